-- Up Migration

-- Stored trades, the database source of the replay exchange actor (backtests, deterministic
-- re-runs). Filled by `tickmesh trades import <exchange> <file>` (NDJSON, CSV or JSON, gzipped
-- or not). The key orders a symbol's trades by time, then id, which is the replay order.
CREATE TABLE IF NOT EXISTS trades (
  exchange text NOT NULL,
  symbol   text NOT NULL,
  id       text NOT NULL,
  ts       timestamptz NOT NULL,
  px       double precision NOT NULL CHECK (px > 0),
  qty      double precision NOT NULL CHECK (qty >= 0),
  side     text CHECK (side IN ('buy', 'sell')),
  PRIMARY KEY (exchange, symbol, ts, id)
);

DO $tsdb$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    EXECUTE $sql$ SELECT create_hypertable('trades', 'ts', chunk_time_interval => INTERVAL '1 day',
                                           if_not_exists => TRUE, migrate_data => TRUE) $sql$;
  END IF;
END
$tsdb$;

-- Down Migration
DROP TABLE trades;
