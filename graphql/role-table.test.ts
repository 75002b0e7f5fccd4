import { buildSchema, isObjectType, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { operationsOf, refusal } from './auth.ts';
import { SCHEMA } from './gateway.ts';
import { mayRun, ROLE_TABLE } from './role-table.ts';

const schema = buildSchema(SCHEMA);
const rootFieldsOfSchema = ['Query', 'Mutation', 'Subscription'].flatMap((t) => {
  const type = schema.getType(t);
  return isObjectType(type) ? Object.keys(type.getFields()).map((f) => `${t}.${f}`) : [];
});

describe('role table', () => {
  it('places every root field of the schema, and nothing else', () => {
    expect(Object.keys(ROLE_TABLE).sort()).toEqual([...rootFieldsOfSchema].sort());
  });

  it('orders the roles: viewer < trader < admin; only login and refreshSession are public', () => {
    for (const op of rootFieldsOfSchema) {
      const access = ROLE_TABLE[op];
      expect(mayRun(null, op)).toBe(access === 'public');
      expect(mayRun('admin', op)).toBe(true);
      if (mayRun('viewer', op)) expect(mayRun('trader', op)).toBe(true);
    }
    expect(rootFieldsOfSchema.filter((op) => mayRun(null, op)).sort()).toEqual([
      'Mutation.login',
      'Mutation.refreshSession',
    ]);
    expect(mayRun('viewer', 'Subscription.candles')).toBe(true);
    expect(mayRun('viewer', 'Query.alertRules')).toBe(false);
    expect(mayRun('trader', 'Mutation.createAlertRule')).toBe(true);
    expect(mayRun('trader', 'Mutation.addSymbol')).toBe(false);
    // A field the table does not know is admin-only.
    expect(mayRun('trader', 'Mutation.somethingNew')).toBe(false);
  });

  it('checks every root field of every operation in a document, fragments included', () => {
    const doc = parse(`
      query A { me { username } ...F }
      fragment F on Query { users { username } }
      mutation B { login(username: "a", password: "b") { accessToken } }
      query C { __typename __schema { queryType { name } } }`);
    expect(operationsOf(doc).sort()).toEqual(['Mutation.login', 'Query.me', 'Query.users']);
    expect(refusal(null, ['Mutation.login'])).toBeNull();
    expect(refusal(null, ['Query.me'])?.code).toBe('TM_ERR_UNAUTHENTICATED');
    const viewer = { username: 'v', role: 'viewer' as const, actor: 'v', expiresAt: null };
    expect(refusal(viewer, operationsOf(doc))?.code).toBe('TM_ERR_FORBIDDEN');
    expect(refusal(viewer, ['Query.me', 'Query.candles'])).toBeNull();
  });
});
