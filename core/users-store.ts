/**
 * Users (`users` table): the one module that knows its columns, for login, the admin API, the
 * `tickmesh users` command and the start-up admin bootstrap. The password hash never leaves
 * this module except to `verifyLogin`'s comparison.
 */
import type { Pool } from './db.ts';
import { BadArgumentError, NotFoundError, shownInput } from './errors.ts';
import { checkPasswordStrength, dummyHash, hashPassword, verifyPassword } from './passwords.ts';

export const ROLES = ['viewer', 'trader', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserRow {
  username: string;
  role: Role;
  createdAt: Date;
  disabledAt: Date | null;
  /** Access tokens name the version they were issued at; ending sessions bumps it. */
  tokenVersion: number;
}

const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const COLUMNS =
  'username, role, created_at AS "createdAt", disabled_at AS "disabledAt", token_version AS "tokenVersion"';

/**
 * Prefix of every statement that ends a user's sessions ($1 is the username): their refresh
 * tokens are revoked in the same statement as the users row changes, and the row's
 * token_version bump ends their access tokens (the trigger tells the gateways to close sockets).
 */
const END_SESSIONS = `WITH ended AS (
  UPDATE refresh_tokens SET revoked_at = now() WHERE username = $1 AND revoked_at IS NULL)`;

export function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role))
    throw new BadArgumentError('role', `one of ${ROLES.join(', ')}`);
  return role as Role;
}

function checkUsername(username: string): void {
  if (!USERNAME.test(username)) throw new BadArgumentError('username', '1 to 64 letters, digits or _ . @ -');
}

function found(row: UserRow | undefined, username: string): UserRow {
  if (!row) throw new NotFoundError(`no user ${shownInput(username)}`);
  return row;
}

export async function listUsers(pool: Pool): Promise<UserRow[]> {
  return (await pool.query<UserRow>(`SELECT ${COLUMNS} FROM users ORDER BY username`)).rows;
}

export async function readUser(pool: Pool, username: string): Promise<UserRow | null> {
  const { rows } = await pool.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE username = $1`, [username]);
  return rows[0] ?? null;
}

export async function createUser(
  pool: Pool,
  username: string,
  password: string,
  role: string,
): Promise<UserRow> {
  checkUsername(username);
  checkPasswordStrength(password);
  const r = checkRole(role);
  const { rows } = await pool.query<UserRow>(
    `INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
     ON CONFLICT (username) DO NOTHING RETURNING ${COLUMNS}`,
    [username, await hashPassword(password), r],
  );
  if (!rows[0]) throw new BadArgumentError('username', `${shownInput(username)} exists already`);
  return rows[0];
}

/**
 * Creates the user, or sets its password and role and re-enables it (the admin bootstrap, run at
 * every start): a user already enabled with this password and role is left as it is (`changed`
 * false), so a restart does not end anyone's session; any other change ends them (END_SESSIONS).
 */
export async function upsertUser(
  pool: Pool,
  username: string,
  password: string,
  role: Role,
): Promise<UserRow & { changed: boolean }> {
  checkUsername(username);
  checkPasswordStrength(password);
  const current = await verifyLogin(pool, username, password);
  if (current && current.role === role) return { ...current, changed: false };
  const hash = await hashPassword(password);
  const { rows } = await pool.query<UserRow>(
    `${END_SESSIONS}
     INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
     ON CONFLICT (username) DO UPDATE SET password_hash = $2, role = $3, disabled_at = NULL,
       token_version = users.token_version + 1, updated_at = now()
     RETURNING ${COLUMNS}`,
    [username, hash, role],
  );
  return { ...rows[0]!, changed: true };
}

export async function setUserRole(pool: Pool, username: string, role: string): Promise<UserRow> {
  const r = checkRole(role);
  const { rows } = await pool.query<UserRow>(
    `UPDATE users SET role = $2, updated_at = now() WHERE username = $1 RETURNING ${COLUMNS}`,
    [username, r],
  );
  return found(rows[0], username);
}

/** Disables the user (idempotent) and ends their sessions. */
export async function disableUser(pool: Pool, username: string): Promise<UserRow> {
  const { rows } = await pool.query<UserRow>(
    `${END_SESSIONS}
     UPDATE users SET disabled_at = coalesce(disabled_at, now()), token_version = token_version + 1,
       updated_at = now()
      WHERE username = $1 RETURNING ${COLUMNS}`,
    [username],
  );
  return found(rows[0], username);
}

/** Sets a new password and ends the user's sessions. */
export async function resetPassword(pool: Pool, username: string, password: string): Promise<UserRow> {
  checkPasswordStrength(password);
  const { rows } = await pool.query<UserRow>(
    `${END_SESSIONS}
     UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = now()
      WHERE username = $1 RETURNING ${COLUMNS}`,
    [username, await hashPassword(password)],
  );
  return found(rows[0], username);
}

/**
 * Whether an access token of `username` issued at `version` still names an enabled user, and
 * that user's role now (a role change applies to the next request), else null.
 */
export async function currentRole(pool: Pool, username: string, version: number): Promise<Role | null> {
  const { rows } = await pool.query<{ role: Role }>(
    'SELECT role FROM users WHERE username = $1 AND token_version = $2 AND disabled_at IS NULL',
    [username, version],
  );
  return rows[0]?.role ?? null;
}

/** The enabled user whose password matches, else null (same work whether or not the user exists). */
export async function verifyLogin(pool: Pool, username: string, password: string): Promise<UserRow | null> {
  const { rows } = await pool.query<UserRow & { password_hash: string }>(
    `SELECT ${COLUMNS}, password_hash FROM users WHERE username = $1`,
    [username],
  );
  const row = rows[0];
  const ok = await verifyPassword(row?.password_hash ?? (await dummyHash()), password);
  if (!row || !ok || row.disabledAt) return null;
  const { password_hash: _, ...user } = row;
  return user;
}
