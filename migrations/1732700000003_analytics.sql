-- Up Migration

-- Indicator values of every closed bar (one row per bar, same key as `candles`). `values` holds
-- the analytics' IndicatorValues (null where there is not enough history yet).
CREATE TABLE indicators (
  exchange   text NOT NULL,
  symbol     text NOT NULL,
  timeframe  text NOT NULL,
  ts         timestamptz NOT NULL,
  "values"   jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (exchange, symbol, timeframe, ts)
);

-- ML features per closed bar, versioned: a new feature definition gets a new version and both
-- can coexist while models migrate.
CREATE TABLE ml_features (
  exchange        text NOT NULL,
  symbol          text NOT NULL,
  timeframe       text NOT NULL,
  ts              timestamptz NOT NULL,
  feature_version integer NOT NULL,
  features        jsonb NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (exchange, symbol, timeframe, feature_version, ts)
);

-- Data quality per symbol per minute (of the exchange clock): trades seen and accepted,
-- quarantined/flagged counts per check, and the symbol's quality score at the end of the minute.
CREATE TABLE data_quality_metrics (
  exchange text NOT NULL,
  symbol   text NOT NULL,
  ts       timestamptz NOT NULL,
  trades   integer NOT NULL,
  accepted integer NOT NULL,
  checks   jsonb NOT NULL,
  score    double precision NOT NULL CHECK (score >= 0 AND score <= 1),
  PRIMARY KEY (exchange, symbol, ts)
);

CREATE TABLE alert_rules (
  id          text PRIMARY KEY,
  exchange    text NOT NULL,
  symbol      text NOT NULL,
  timeframe   text NOT NULL DEFAULT '1m' CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
  condition   text NOT NULL CHECK (condition IN ('PRICE_ABOVE', 'PRICE_BELOW', 'PCT_CHANGE', 'RSI_ABOVE',
                                                  'RSI_BELOW', 'MACD_CROSS_UP', 'MACD_CROSS_DOWN', 'VOLUME_SPIKE')),
  threshold   double precision NOT NULL,
  cooldown_ms bigint NOT NULL DEFAULT 0 CHECK (cooldown_ms >= 0),
  one_time    boolean NOT NULL DEFAULT false,
  enabled     boolean NOT NULL DEFAULT true,
  -- {webhook: {url, secret}, slack: {url}, email: {to}}; every firing also goes to the GraphQL subscription.
  channels    jsonb NOT NULL DEFAULT '{}'::jsonb,
  note        text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (exchange, symbol) REFERENCES symbols (exchange, symbol) ON DELETE CASCADE
);
CREATE INDEX alert_rules_symbol ON alert_rules (exchange, symbol);

-- One row per firing; the id is the evaluator's deterministic firing id, so a replay after a
-- restart cannot store (or deliver) a firing twice.
CREATE TABLE alert_events (
  id         text PRIMARY KEY,
  rule_id    text NOT NULL,
  exchange   text NOT NULL,
  symbol     text NOT NULL,
  timeframe  text NOT NULL,
  bar_ts     timestamptz NOT NULL,
  condition  text NOT NULL,
  threshold  double precision NOT NULL,
  value      double precision NOT NULL,
  closed_bar boolean NOT NULL,
  fired_at   timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_rule ON alert_events (rule_id, fired_at DESC);
CREATE INDEX alert_events_symbol ON alert_events (exchange, symbol, fired_at DESC);

-- Delivery of each firing to each configured channel: attempts, outcome, last error.
CREATE TABLE alert_deliveries (
  event_id     text NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
  channel      text NOT NULL CHECK (channel IN ('webhook', 'slack', 'email')),
  status       text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts     integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error   text,
  delivered_at timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';

-- Symbol actors reload their rules when this fires (they also poll).
CREATE FUNCTION tickmesh_alert_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tickmesh_alert_rules', '');
  RETURN NULL;
END;
$$;
CREATE TRIGGER alert_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON alert_rules
  FOR EACH STATEMENT EXECUTE FUNCTION tickmesh_alert_rules_changed();

-- TimescaleDB, only where the extension is installed (see 1732700000001): the per-bar tables
-- become hypertables like `candles`; on plain PostgreSQL they stay ordinary tables.
DO $tsdb$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RAISE NOTICE 'timescaledb is not installed: analytics tables stay plain tables';
    RETURN;
  END IF;
  EXECUTE $sql$ SELECT create_hypertable('indicators', 'ts', chunk_time_interval => INTERVAL '7 days',
                                         if_not_exists => TRUE, migrate_data => TRUE) $sql$;
  EXECUTE $sql$ SELECT create_hypertable('ml_features', 'ts', chunk_time_interval => INTERVAL '7 days',
                                         if_not_exists => TRUE, migrate_data => TRUE) $sql$;
  EXECUTE $sql$ SELECT create_hypertable('data_quality_metrics', 'ts', chunk_time_interval => INTERVAL '30 days',
                                         if_not_exists => TRUE, migrate_data => TRUE) $sql$;
  EXECUTE $sql$ SELECT add_retention_policy('data_quality_metrics', INTERVAL '365 days', if_not_exists => TRUE) $sql$;
END
$tsdb$;

-- Down Migration
DROP TRIGGER alert_rules_changed ON alert_rules;
DROP FUNCTION tickmesh_alert_rules_changed();
DROP TABLE alert_deliveries;
DROP TABLE alert_events;
DROP TABLE alert_rules;
DROP TABLE data_quality_metrics;
DROP TABLE ml_features;
DROP TABLE indicators;
