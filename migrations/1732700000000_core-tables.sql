-- Up Migration

-- Exchanges the system knows. `kind` chooses the exchange actor's adapter:
-- sim (built-in simulator), ccxt, yahoo, replay, or external (trades published by someone else).
CREATE TABLE exchanges (
  id         text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9]{0,31}$'),
  name       text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('sim', 'ccxt', 'yahoo', 'replay', 'external')),
  enabled    boolean NOT NULL DEFAULT true,
  options    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The desired set of symbols: adding or activating a row starts its actors.
CREATE TABLE symbols (
  exchange   text NOT NULL REFERENCES exchanges (id) ON DELETE CASCADE,
  symbol     text NOT NULL CHECK (length(symbol) BETWEEN 1 AND 64),
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (exchange, symbol)
);

-- Closed bars. `ts` is the bar's open time (UTC, aligned to the timeframe).
-- The primary key is the idempotency key of the writer's upserts; it leads with the series
-- so range reads of one series are index scans.
CREATE TABLE candles (
  exchange       text NOT NULL,
  symbol         text NOT NULL,
  timeframe      text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '1h', '4h', '1d')),
  ts             timestamptz NOT NULL,
  open           double precision NOT NULL,
  high           double precision NOT NULL,
  low            double precision NOT NULL,
  close          double precision NOT NULL,
  volume         double precision NOT NULL CHECK (volume >= 0),
  trades         integer NOT NULL DEFAULT 0 CHECK (trades >= 0),
  gap            integer NOT NULL DEFAULT 0 CHECK (gap >= 0),
  revision       integer NOT NULL DEFAULT 0 CHECK (revision >= 0),
  source         text NOT NULL DEFAULT 'trades' CHECK (source IN ('trades', 'source')),
  first_trade_at timestamptz,
  last_trade_at  timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (exchange, symbol, timeframe, ts),
  CHECK (low <= open AND open <= high AND low <= close AND close <= high)
);

-- Wake the supervisor as soon as the desired set changes (it also polls, so NOTIFY is only a speed-up).
CREATE FUNCTION tickmesh_symbols_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tickmesh_symbols', '');
  RETURN NULL;
END;
$$;

CREATE TRIGGER symbols_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON symbols
  FOR EACH STATEMENT EXECUTE FUNCTION tickmesh_symbols_changed();
CREATE TRIGGER exchanges_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON exchanges
  FOR EACH STATEMENT EXECUTE FUNCTION tickmesh_symbols_changed();

-- Down Migration
DROP TABLE candles;
DROP TABLE symbols;
DROP TABLE exchanges;
DROP FUNCTION tickmesh_symbols_changed();
