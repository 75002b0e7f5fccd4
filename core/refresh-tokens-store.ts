/**
 * Refresh tokens (`refresh_tokens` table), single use and rotated: each refresh marks the token
 * used and issues the next of its family in the same transaction. A used token presented again
 * means two parties hold the family (a stolen copy or a replay): the whole family is revoked,
 * so neither can go on. Only SHA-256 hashes are stored.
 */
import { randomUUID } from 'node:crypto';
import { inTransaction, type Pool } from './db.ts';
import { newOpaqueToken, tokenHash } from './opaque-tokens.ts';
import type { Role } from './users-store.ts';

const PREFIX = 'tmr';

export type Rotation =
  | { ok: true; token: string; username: string; role: Role }
  | { ok: false; reason: 'unknown' | 'expired' | 'revoked' | 'reused' | 'disabled'; username?: string };

/** A new token of `family` (a new family when null), valid for `ttlMs`. */
export async function issueRefreshToken(
  db: Pick<Pool, 'query'>,
  username: string,
  ttlMs: number,
  family: string | null = null,
): Promise<string> {
  const token = newOpaqueToken(PREFIX);
  await db.query(
    `INSERT INTO refresh_tokens (token_hash, username, family, expires_at)
     VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')`,
    [tokenHash(token), username, family ?? randomUUID(), ttlMs],
  );
  return token;
}

/** Uses `token` once and returns its successor; a second use revokes the family. */
export async function rotateRefreshToken(pool: Pool, token: string, ttlMs: number): Promise<Rotation> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{
      username: string;
      family: string;
      expired: boolean;
      used_at: Date | null;
      revoked_at: Date | null;
      role: Role;
      disabled_at: Date | null;
    }>(
      `SELECT t.username, t.family, t.expires_at <= now() AS expired, t.used_at, t.revoked_at, u.role, u.disabled_at
       FROM refresh_tokens t JOIN users u ON u.username = t.username
      WHERE t.token_hash = $1 FOR UPDATE OF t`,
      [tokenHash(token)],
    );
    const t = rows[0];
    let outcome: Rotation;
    if (!t) outcome = { ok: false, reason: 'unknown' };
    else if (t.revoked_at) outcome = { ok: false, reason: 'revoked', username: t.username };
    else if (t.used_at) {
      await client.query(
        'UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL',
        [t.family],
      );
      outcome = { ok: false, reason: 'reused', username: t.username };
    } else if (t.expired) outcome = { ok: false, reason: 'expired', username: t.username };
    else if (t.disabled_at) outcome = { ok: false, reason: 'disabled', username: t.username };
    else {
      await client.query('UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1', [
        tokenHash(token),
      ]);
      const next = await issueRefreshToken(client, t.username, ttlMs, t.family);
      outcome = { ok: true, token: next, username: t.username, role: t.role };
    }
    return outcome;
  });
}

/** Logout: revokes the token's whole family; false when the token is unknown. */
export async function revokeRefreshFamily(pool: Pool, token: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
      WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1)`,
    [tokenHash(token)],
  );
  return (rowCount ?? 0) > 0;
}

/** The user a refresh token was issued to, or null for an unknown token. */
export async function refreshTokenOwner(pool: Pool, token: string): Promise<string | null> {
  const { rows } = await pool.query<{ username: string }>(
    'SELECT username FROM refresh_tokens WHERE token_hash = $1',
    [tokenHash(token)],
  );
  return rows[0]?.username ?? null;
}
