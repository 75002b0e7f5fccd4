-- Up Migration

-- Who may use the API. Usernames are compared as written (case-sensitive, like NATS users);
-- the password hash is an argon2id PHC string and never leaves the database layer.
CREATE TABLE users (
  username      text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
  password_hash text NOT NULL,
  role          text NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  disabled_at   timestamptz
);

-- Keys for programs: only a SHA-256 of the key is kept (the key is random, so no slow hash is
-- needed); `owner` is the user who created it.
CREATE TABLE api_keys (
  id         text PRIMARY KEY,
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  role       text NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
  owner      text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
  key_hash   text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

-- Refresh tokens, single use: each refresh marks its token used and issues the next one of the
-- same family; presenting a used token again revokes the whole family (it was stolen or replayed).
CREATE TABLE refresh_tokens (
  token_hash text PRIMARY KEY,
  username   text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
  family     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz,
  revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (username);

-- Every mutation and every login attempt. `actor` is a username or `apikey:<id>`, null when
-- unknown (a failed login of a user that does not exist keeps the name tried in `arguments`).
-- Arguments are stored with secrets (passwords, tokens, webhook secrets) removed.
CREATE TABLE audit_log (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  actor     text,
  role      text,
  operation text NOT NULL,
  arguments jsonb NOT NULL DEFAULT '{}'::jsonb,
  result    text NOT NULL,
  address   text
);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- The creator of each rule (null for rules from before users existed: visible to admins only).
ALTER TABLE alert_rules ADD COLUMN owner text REFERENCES users (username) ON DELETE SET NULL;
CREATE INDEX alert_rules_owner ON alert_rules (owner);

-- Down Migration
DROP INDEX alert_rules_owner;
ALTER TABLE alert_rules DROP COLUMN owner;
DROP TABLE audit_log;
DROP TABLE refresh_tokens;
DROP TABLE api_keys;
DROP TABLE users;
