-- Up Migration

-- `incomplete`: part of the bar's window was lost in a feed outage the exchange actor could not
-- repair (the exchange's history no longer reached back). Nullable with a default so the
-- statement is also accepted on a TimescaleDB hypertable with compressed chunks; readers treat
-- NULL as false. `source` (added with the table) says whether a bar was built from trades or
-- from a source's own 1m bars (Yahoo).
ALTER TABLE candles ADD COLUMN IF NOT EXISTS incomplete boolean DEFAULT false;

-- Down Migration
ALTER TABLE candles DROP COLUMN IF EXISTS incomplete;
