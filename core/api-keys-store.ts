/**
 * API keys for programs (`api_keys` table). The key is shown once at creation; only its hash is
 * stored, and a revoked key stops matching at once (every request looks it up).
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from './db.ts';
import { BadArgumentError } from './errors.ts';
import { newOpaqueToken, tokenHash } from './opaque-tokens.ts';
import type { Role } from './users-store.ts';

/** Prefix of every API key; access tokens (JWTs) never start with it. */
export const API_KEY_PREFIX = 'tmk';

export interface ApiKeyRow {
  id: string;
  name: string;
  role: Role;
  owner: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const COLUMNS = 'id, name, role, owner, created_at AS "createdAt", revoked_at AS "revokedAt"';

export async function createApiKey(
  pool: Pool,
  owner: string,
  name: string,
  role: Role,
): Promise<{ key: string; row: ApiKeyRow }> {
  if (name.length < 1 || name.length > 100) throw new BadArgumentError('name', '1 to 100 characters');
  const key = newOpaqueToken(API_KEY_PREFIX);
  const { rows } = await pool.query<ApiKeyRow>(
    `INSERT INTO api_keys (id, name, role, owner, key_hash) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
    [`k-${randomUUID()}`, name, role, owner, tokenHash(key)],
  );
  return { key, row: rows[0]! };
}

/** Keys of one owner, or all keys (owner null), newest first. */
export async function listApiKeys(pool: Pool, owner: string | null): Promise<ApiKeyRow[]> {
  const { rows } = await pool.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE $1::text IS NULL OR owner = $1 ORDER BY created_at DESC, id`,
    [owner],
  );
  return rows;
}

/** Revokes a key (of `owner` only, unless owner is null); false when there is no such live key. */
export async function revokeApiKey(pool: Pool, id: string, owner: string | null): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE api_keys SET revoked_at = now()
      WHERE id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR owner = $2)`,
    [id, owner],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * The live key with this secret whose owner is enabled, else null. Its role is the key's or its
 * owner's, whichever is lower: demoting a user demotes their keys too.
 */
export async function findApiKey(pool: Pool, key: string): Promise<ApiKeyRow | null> {
  const { rows } = await pool.query<ApiKeyRow>(
    `SELECT k.id, k.name, k.owner, k.created_at AS "createdAt", k.revoked_at AS "revokedAt",
            (ARRAY['viewer', 'trader', 'admin'])[LEAST(array_position(ARRAY['viewer', 'trader', 'admin'], k.role),
                                                      array_position(ARRAY['viewer', 'trader', 'admin'], u.role))] AS role
       FROM api_keys k JOIN users u ON u.username = k.owner
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.disabled_at IS NULL`,
    [tokenHash(key)],
  );
  return rows[0] ?? null;
}
