-- Up Migration

-- Access tokens carry the token_version they were issued at; a password reset, a disable or a
-- re-enable bumps it, so every access token issued before stops working at once (the gateway
-- checks it on every request).
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

-- Every change that can end or narrow a credential is announced on the channel
-- `tickmesh_credentials` when its transaction commits, whoever made it (a gateway replica, the
-- `tickmesh users` command, psql): `user:<username>` or `apikey:<id>`. Gateways listen and close
-- the graphql-ws sockets that the change affects.
CREATE FUNCTION tickmesh_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'users' THEN
    PERFORM pg_notify('tickmesh_credentials', 'user:' || OLD.username);
  ELSE
    PERFORM pg_notify('tickmesh_credentials', 'apikey:' || OLD.id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER users_credentials_changed
  AFTER UPDATE OF role, disabled_at, token_version OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION tickmesh_notify_credentials();
CREATE TRIGGER api_keys_credentials_changed
  AFTER UPDATE OF revoked_at, role OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION tickmesh_notify_credentials();

-- Failed logins per user and per address, shared by every gateway replica (the table layout
-- rate-limiter-flexible's RateLimiterPostgres uses; `expire` is epoch milliseconds).
CREATE TABLE login_failures (
  key    varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);

-- Down Migration
DROP TABLE login_failures;
DROP TRIGGER api_keys_credentials_changed ON api_keys;
DROP TRIGGER users_credentials_changed ON users;
DROP FUNCTION tickmesh_notify_credentials();
ALTER TABLE users DROP COLUMN token_version;
