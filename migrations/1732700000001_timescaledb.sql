-- Up Migration

-- TimescaleDB features, only where the extension can be used. On plain PostgreSQL (the
-- embedded default, CI) this is a no-op and `candles` stays an ordinary table with its
-- primary-key index. Where TimescaleDB is installed and preloaded:
--   * candles becomes a hypertable (7-day chunks; existing rows are migrated),
--   * compression segmented by series, ordered by time, for chunks older than 30 days
--     (late revisions and backfills land in uncompressed chunks almost always; TimescaleDB
--     >= 2.11 also accepts upserts into compressed ones),
--   * a 10-year retention policy.
-- Every call is idempotent, so re-running on a database that already has them is safe.
DO $tsdb$
DECLARE
  available boolean;
  preloaded boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') INTO available;
    SELECT coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' INTO preloaded;
    IF NOT (available AND preloaded) THEN
      RAISE NOTICE 'timescaledb is not available (available=%, preloaded=%): candles stays a plain table',
        available, preloaded;
      RETURN;
    END IF;
    CREATE EXTENSION IF NOT EXISTS timescaledb;
  END IF;

  -- Dynamic SQL: these names only exist when the extension does.
  EXECUTE $sql$
    SELECT create_hypertable('candles', 'ts',
      chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE, migrate_data => TRUE)
  $sql$;

  IF NOT EXISTS (
    SELECT 1 FROM timescaledb_information.hypertables
    WHERE hypertable_name = 'candles' AND compression_enabled
  ) THEN
    EXECUTE $sql$
      ALTER TABLE candles SET (
        timescaledb.compress,
        timescaledb.compress_segmentby = 'exchange, symbol, timeframe',
        timescaledb.compress_orderby = 'ts DESC'
      )
    $sql$;
  END IF;

  EXECUTE $sql$ SELECT add_compression_policy('candles', INTERVAL '30 days', if_not_exists => TRUE) $sql$;
  EXECUTE $sql$ SELECT add_retention_policy('candles', INTERVAL '3650 days', if_not_exists => TRUE) $sql$;
END
$tsdb$;

-- Down Migration
DO $tsdb$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    EXECUTE $sql$ SELECT remove_retention_policy('candles', if_exists => TRUE) $sql$;
    EXECUTE $sql$ SELECT remove_compression_policy('candles', if_exists => TRUE) $sql$;
  END IF;
END
$tsdb$;
