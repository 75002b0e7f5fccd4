/**
 * The audit trail of GraphQL mutations: who (caller), with which role, what (each root
 * mutation field and its arguments, secrets removed by the store), the result (ok or the error
 * code) and from where. Requests without valid credentials write nothing; a mutation refused
 * for its role is recorded with TM_ERR_FORBIDDEN; login and refreshSession, which need no token,
 * record themselves (they know who the password or the refresh token belongs to).
 */
import { type DocumentNode, Kind, type OperationDefinitionNode, valueFromASTUntyped } from 'graphql';
import { appendAudit } from '../core/audit-store.ts';
import type { Pool } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type { AuthContext } from './callers.ts';

export interface AuditedField {
  /** The response key (alias or name): where its errors point. */
  key: string;
  operation: string;
  arguments: Record<string, unknown>;
}

/** Fields that write their own audit entries. */
const SELF_AUDITED = new Set(['login', 'refreshSession']);

/**
 * The root mutation fields of the document with their argument values. Values are read from the
 * AST (variables substituted), not through the schema: mercurius runs its own copy of graphql,
 * whose schema objects this module's copy cannot inspect.
 */
export function mutationsOf(
  document: DocumentNode,
  variables: Record<string, unknown> | undefined,
): AuditedField[] {
  return document.definitions
    .filter(
      (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && d.operation === 'mutation',
    )
    .flatMap((op) => op.selectionSet.selections)
    .flatMap((s) => {
      if (s.kind !== Kind.FIELD || SELF_AUDITED.has(s.name.value) || s.name.value.startsWith('__')) return [];
      const args = Object.fromEntries(
        (s.arguments ?? []).map((a) => [a.name.value, valueFromASTUntyped(a.value, variables ?? {})]),
      );
      return [{ key: s.alias?.value ?? s.name.value, operation: s.name.value, arguments: args }];
    });
}

export class AuditTrail {
  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {}

  /** Writes one entry; a failure to write is logged, never turned into the caller's error. */
  async record(
    ctx: AuthContext,
    entry: { operation: string; arguments: Record<string, unknown>; result: string; actor?: string | null },
  ): Promise<void> {
    await appendAudit(this.pool, {
      actor: entry.actor !== undefined ? entry.actor : (ctx.caller?.actor ?? null),
      role: ctx.caller?.role ?? null,
      operation: entry.operation,
      arguments: entry.arguments,
      result: entry.result,
      address: ctx.address,
    }).catch((err) => this.log.error({ err, operation: entry.operation }, 'audit entry not written'));
  }

  /** One entry per field, its result taken from the errors that point at it. */
  async recordAll(
    ctx: AuthContext,
    fields: AuditedField[],
    errors: readonly { path?: readonly (string | number)[]; extensions?: { code?: unknown } }[] | undefined,
    fallback?: string,
  ): Promise<void> {
    for (const f of fields) {
      const error = errors?.find((e) => e.path?.[0] === f.key);
      const code = error ? String(error.extensions?.code ?? 'error') : (fallback ?? 'ok');
      await this.record(ctx, { operation: f.operation, arguments: f.arguments, result: code });
    }
  }
}
