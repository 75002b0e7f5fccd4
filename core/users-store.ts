/**
 * Users (`users` table): the one module that knows its columns, for login, the admin API, the
 * `tickmesh users` command and the start-up admin bootstrap. The password hash never leaves
 * this module except to `verifyLogin`'s comparison.
 */
import type { Pool } from './db.ts';
import { BadArgumentError, NotFoundError } from './errors.ts';
import { checkPasswordStrength, dummyHash, hashPassword, verifyPassword } from './passwords.ts';

export const ROLES = ['viewer', 'trader', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserRow {
  username: string;
  role: Role;
  createdAt: Date;
  disabledAt: Date | null;
}

const USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
const COLUMNS = 'username, role, created_at AS "createdAt", disabled_at AS "disabledAt"';

export function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role))
    throw new BadArgumentError('role', `one of ${ROLES.join(', ')}`);
  return role as Role;
}

function checkUsername(username: string): void {
  if (!USERNAME.test(username)) throw new BadArgumentError('username', '1 to 64 letters, digits or _ . @ -');
}

function found(row: UserRow | undefined, username: string): UserRow {
  if (!row) throw new NotFoundError(`no user ${JSON.stringify(username)}`);
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
  if (!rows[0]) throw new BadArgumentError('username', `${JSON.stringify(username)} exists already`);
  return rows[0];
}

/** Creates the user, or sets its password and role and re-enables it (the admin bootstrap). */
export async function upsertUser(
  pool: Pool,
  username: string,
  password: string,
  role: Role,
): Promise<UserRow> {
  checkUsername(username);
  checkPasswordStrength(password);
  const { rows } = await pool.query<UserRow>(
    `INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
     ON CONFLICT (username) DO UPDATE SET password_hash = $2, role = $3, disabled_at = NULL, updated_at = now()
     RETURNING ${COLUMNS}`,
    [username, await hashPassword(password), role],
  );
  return rows[0]!;
}

export async function setUserRole(pool: Pool, username: string, role: string): Promise<UserRow> {
  const r = checkRole(role);
  const { rows } = await pool.query<UserRow>(
    `UPDATE users SET role = $2, updated_at = now() WHERE username = $1 RETURNING ${COLUMNS}`,
    [username, r],
  );
  return found(rows[0], username);
}

/** Disables the user (idempotent); their refresh tokens stop working with it. */
export async function disableUser(pool: Pool, username: string): Promise<UserRow> {
  const { rows } = await pool.query<UserRow>(
    `UPDATE users SET disabled_at = coalesce(disabled_at, now()), updated_at = now() WHERE username = $1
     RETURNING ${COLUMNS}`,
    [username],
  );
  return found(rows[0], username);
}

export async function resetPassword(pool: Pool, username: string, password: string): Promise<UserRow> {
  checkPasswordStrength(password);
  const { rows } = await pool.query<UserRow>(
    `UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1 RETURNING ${COLUMNS}`,
    [username, await hashPassword(password)],
  );
  return found(rows[0], username);
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
