/**
 * The audit log (`audit_log` table): every mutation and every login attempt, with who asked,
 * their role, the operation, its arguments without secrets, the result and the address.
 */
import type { Pool } from './db.ts';

export interface AuditEntry {
  actor: string | null;
  role: string | null;
  operation: string;
  arguments: Record<string, unknown>;
  /** `ok`, or the error code (`TM_ERR_FORBIDDEN`, …). */
  result: string;
  address: string | null;
}

export interface AuditRow extends AuditEntry {
  id: string;
  at: Date;
}

/** Argument names whose values are never stored (at any depth). */
const SECRET_KEYS = /^(password|newPassword|refreshToken|token|secret|key|authorization)$/i;

/** A copy of `args` with every secret-named value replaced by "[redacted]". */
export function redactSecrets(args: unknown): unknown {
  if (Array.isArray(args)) return args.map(redactSecrets);
  if (args && typeof args === 'object')
    return Object.fromEntries(
      Object.entries(args).map(([k, v]) => [k, SECRET_KEYS.test(k) ? '[redacted]' : redactSecrets(v)]),
    );
  return args;
}

export async function appendAudit(pool: Pool, e: AuditEntry): Promise<void> {
  await pool.query(
    `INSERT INTO audit_log (actor, role, operation, arguments, result, address) VALUES ($1, $2, $3, $4, $5, $6)`,
    [e.actor, e.role, e.operation, JSON.stringify(redactSecrets(e.arguments)), e.result, e.address],
  );
}

/** Entries in [from, to), newest first. */
export async function readAudit(
  pool: Pool,
  q: { from: Date | null; to: Date | null; limit: number },
): Promise<AuditRow[]> {
  const { rows } = await pool.query<AuditRow>(
    `SELECT id::text AS id, at, actor, role, operation, arguments, result, address FROM audit_log
      WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
      ORDER BY at DESC, id DESC LIMIT $3`,
    [q.from, q.to, q.limit],
  );
  return rows;
}
