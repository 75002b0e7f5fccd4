-- Up Migration

-- Request budgets per principal and kind (graphql/rate-limits.ts), shared by every gateway
-- replica: the table layout rate-limiter-flexible's RateLimiterPostgres uses (`key` is
-- `<kind>:<principal>`, `expire` is epoch milliseconds).
CREATE TABLE request_budgets (
  key    varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);

-- Down Migration
DROP TABLE request_budgets;
