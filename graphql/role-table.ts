/**
 * The one table of who may run what: every root field of the schema, by the lowest role allowed
 * (roles are ordered viewer < trader < admin), or `public` for the two that work without a
 * token. A field missing here is admin-only, so a new operation is closed until placed.
 * Ownership (a trader's own alert rules) is checked by the resolvers on top of this.
 */
import { Kind, type OperationDefinitionNode } from 'graphql';
import type { Role } from '../core/users-store.ts';

type Access = 'public' | Role;

export const ROLE_TABLE: Readonly<Record<string, Access>> = {
  'Mutation.login': 'public',
  'Mutation.refreshSession': 'public',
  // viewer: market data, indicators, features, quality, actors, candle subscriptions
  'Query.exchanges': 'viewer',
  'Query.symbols': 'viewer',
  'Query.timeframes': 'viewer',
  'Query.candles': 'viewer',
  'Query.actors': 'viewer',
  'Query.quality': 'viewer',
  'Query.features': 'viewer',
  'Query.latestFeatures': 'viewer',
  'Query.me': 'viewer',
  'Mutation.logout': 'viewer',
  'Subscription.candles': 'viewer',
  // trader: + their own alert rules and firings
  'Query.alertRules': 'trader',
  'Query.alertEvents': 'trader',
  'Mutation.createAlertRule': 'trader',
  'Mutation.updateAlertRule': 'trader',
  'Mutation.deleteAlertRule': 'trader',
  'Subscription.alerts': 'trader',
  // admin: everything else (symbols, users, API keys, audit log), listed for the reader
  'Mutation.addSymbol': 'admin',
  'Mutation.setSymbolActive': 'admin',
  'Mutation.removeSymbol': 'admin',
  'Mutation.restartActor': 'admin',
  'Query.users': 'admin',
  'Query.apiKeys': 'admin',
  'Query.auditLog': 'admin',
  'Mutation.createUser': 'admin',
  'Mutation.setUserRole': 'admin',
  'Mutation.disableUser': 'admin',
  'Mutation.resetPassword': 'admin',
  'Mutation.createApiKey': 'admin',
  'Mutation.revokeApiKey': 'admin',
};

const RANK: Record<Role, number> = { viewer: 0, trader: 1, admin: 2 };

export function accessOf(operation: string): Access {
  return ROLE_TABLE[operation] ?? 'admin';
}

export function mayRun(role: Role | null, operation: string): boolean {
  const access = accessOf(operation);
  if (access === 'public') return true;
  return role !== null && RANK[role] >= RANK[access];
}

/**
 * The root fields an operation selects, as `Type.field` (`__typename` and introspection fields
 * are left out: they read the schema, not data). Fragments on the root are followed.
 */
export function rootFields(
  operation: OperationDefinitionNode,
  fragments: Map<string, { selectionSet: OperationDefinitionNode['selectionSet'] }>,
): string[] {
  const type =
    operation.operation === 'query'
      ? 'Query'
      : operation.operation === 'mutation'
        ? 'Mutation'
        : 'Subscription';
  const out = new Set<string>();
  const visit = (set: OperationDefinitionNode['selectionSet'], seen: Set<string>) => {
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        if (!s.name.value.startsWith('__')) out.add(`${type}.${s.name.value}`);
      } else if (s.kind === Kind.INLINE_FRAGMENT) visit(s.selectionSet, seen);
      else if (!seen.has(s.name.value)) {
        const f = fragments.get(s.name.value);
        if (f) visit(f.selectionSet, new Set([...seen, s.name.value]));
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return [...out];
}
