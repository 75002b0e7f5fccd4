-- Up Migration

-- One retention horizon for the bars and everything computed from them (only where TimescaleDB
-- is installed; a no-op on plain PostgreSQL). TimescaleDB retention drops chunks by bar time:
-- 1732700000003 kept data_quality_metrics for 365 days while candles keep 10 years, so a replay
-- or import of older history (the recordings under shared/data are from 2019) got its bars but
-- lost their quality reports to the next policy run, minutes after they were written; indicators
-- and ml_features had no horizon at all and outlived their bars. Now all four keep 10 years of
-- bar time. (Retention by chunk creation time, `drop_created_before`, is not used: its policy
-- job fails on timestamp-partitioned hypertables.)
DO $tsdb$
DECLARE
  t text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RAISE NOTICE 'timescaledb is not installed: no retention policies';
    RETURN;
  END IF;
  EXECUTE $sql$ SELECT remove_retention_policy('data_quality_metrics', if_exists => TRUE) $sql$;
  FOREACH t IN ARRAY ARRAY['data_quality_metrics', 'indicators', 'ml_features'] LOOP
    EXECUTE format('SELECT add_retention_policy(%L, INTERVAL %L, if_not_exists => TRUE)', t, '3650 days');
  END LOOP;
END
$tsdb$;

-- Down Migration
DO $tsdb$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    EXECUTE $sql$ SELECT remove_retention_policy('indicators', if_exists => TRUE) $sql$;
    EXECUTE $sql$ SELECT remove_retention_policy('ml_features', if_exists => TRUE) $sql$;
    EXECUTE $sql$ SELECT remove_retention_policy('data_quality_metrics', if_exists => TRUE) $sql$;
    EXECUTE $sql$ SELECT add_retention_policy('data_quality_metrics', INTERVAL '365 days') $sql$;
  END IF;
END
$tsdb$;
