/**
 * Every GraphQL door asks who you are: each root field of the schema without a token (HTTP 401,
 * TM_ERR_UNAUTHENTICATED, nothing changed), graphql-ws without a valid connection_init
 * (closed 4401, no data), a socket closed when its token expires (fake clock), and the role
 * table both ways: each role runs what it may and gets TM_ERR_FORBIDDEN for the rest.
 */
import type { AddressInfo } from 'node:net';
import {
  buildSchema,
  type GraphQLArgument,
  type GraphQLInputType,
  type GraphQLOutputType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { createUser } from '../core/users-store.ts';
import { buildGateway, SCHEMA } from '../graphql/gateway.ts';
import { mayRun, ROLE_TABLE } from '../graphql/role-table.ts';
import { type Api, gqlHttp, signIn, type Target, wsClient } from './support/graphql.ts';
import { eventually, TEST_AUTH, testLog, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

const schema = buildSchema(SCHEMA);

/** A literal of the input type: required fields only, placeholder values. */
function sample(type: GraphQLInputType): string {
  const t = isNonNullType(type) ? type.ofType : type;
  if (isListType(t)) return `[${sample(t.ofType)}]`;
  if (isEnumType(t)) return t.getValues()[0]!.name;
  if (isInputObjectType(t))
    return `{${Object.values(t.getFields())
      .filter((f) => isNonNullType(f.type))
      .map((f) => `${f.name}: ${sample(f.type)}`)
      .join(', ')}}`;
  if (isScalarType(t))
    return t.name === 'Int' || t.name === 'Float' ? '1' : t.name === 'Boolean' ? 'true' : '"x"';
  throw new Error(`no sample for ${String(t)}`);
}

function selection(type: GraphQLOutputType): string {
  return isObjectType(getNamedType(type)) ? ' { __typename }' : '';
}

/** `Type.field` → a document that runs it with placeholder arguments. */
function operation(op: string): string {
  const [typeName, fieldName] = op.split('.') as [string, string];
  const field = (schema.getType(typeName) as ReturnType<typeof schema.getMutationType> & object).getFields()[
    fieldName
  ]!;
  const args = field.args.filter((a: GraphQLArgument) => isNonNullType(a.type));
  const argText = args.length ? `(${args.map((a) => `${a.name}: ${sample(a.type)}`).join(', ')})` : '';
  return `${typeName.toLowerCase()} { ${fieldName}${argText}${selection(field.type)} }`;
}

const HTTP_OPS = Object.keys(ROLE_TABLE).filter((op) => !op.startsWith('Subscription.'));
const SUBSCRIPTIONS = Object.keys(ROLE_TABLE).filter((op) => op.startsWith('Subscription.'));
const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

/** The close code of a graphql-ws socket that subscribes to `query` (null if it stays open 2 s with no data). */
async function closeCodeOf(target: Target, query: string): Promise<{ code: number | null; data: number }> {
  let data = 0;
  let code: number | null = null;
  const client = wsClient(target, { lazy: true, on: { closed: (e) => (code = (e as CloseEvent).code) } });
  await new Promise<void>((resolve) => {
    const stop = client.subscribe(
      { query },
      { next: () => data++, error: () => resolve(), complete: () => resolve() },
    );
    setTimeout(() => {
      stop();
      resolve();
    }, 2000).unref();
  });
  await client.dispose();
  return { code, data };
}

describe('the GraphQL doors', () => {
  let sys: TestSystem;
  let admin: Api;
  const as: Record<'viewer' | 'trader' | 'admin', Api> = {} as never;

  beforeAll(async () => {
    sys = await startSystem({ exchange: { id: 'test', symbols: ['AAPL'] }, roles: ['gateway'] });
    admin = await signIn(sys.base);
    await createUser(sys.db.pool, 'vic', 'viewer password', 'viewer');
    await createUser(sys.db.pool, 'tess', 'trader password', 'trader');
    as.viewer = await signIn(sys.base, 'vic', 'viewer password');
    as.trader = await signIn(sys.base, 'tess', 'trader password');
    as.admin = admin;
  });
  afterAll(async () => sys?.stop());

  async function counts(): Promise<Record<string, number>> {
    const tables = ['symbols', 'alert_rules', 'users', 'api_keys', 'refresh_tokens', 'audit_log'];
    const out: Record<string, number> = {};
    for (const t of tables)
      out[t] = (await sys.db.pool.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n;
    const active = await sys.db.pool.query('SELECT bool_and(active) AS a FROM symbols');
    out.active = active.rows[0].a ? 1 : 0;
    return out;
  }

  it('refuse every query and mutation without a token (401), and change nothing', async () => {
    const before = await counts();
    for (const op of HTTP_OPS) {
      if (ROLE_TABLE[op] === 'public') continue;
      for (const target of [
        sys.base,
        { base: sys.base, token: 'not-a-token' },
        { base: sys.base, token: 'tmk_forged' },
      ]) {
        const r = await gqlHttp(target, operation(op));
        expect([op, r.status, codeOf(r.body)]).toEqual([op, 401, 'TM_ERR_UNAUTHENTICATED']);
        expect(r.body.data ?? null).toBeNull();
      }
    }
    // Even a plain mutation someone could try first.
    const r = await gqlHttp(
      sys.base,
      'mutation { setSymbolActive(exchange: "test", symbol: "AAPL", active: false) { active } }',
    );
    expect(r.status).toBe(401);
    // Who asks comes before what it costs: a stranger's oversized or too costly document is
    // refused as unauthenticated too, not with the limits (TM_ERR_LIMIT) a signed-in caller gets.
    const candles = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `a${i}: candles(exchange: "test", symbol: "AAPL", timeframe: "1m", limit: 5000) { time }`).join(' ')} }`;
    for (const n of [2000, 30]) {
      const bomb = await gqlHttp(sys.base, candles(n));
      expect([n, bomb.status, codeOf(bomb.body)]).toEqual([n, 401, 'TM_ERR_UNAUTHENTICATED']);
      expect(codeOf((await gqlHttp(as.viewer, candles(n))).body)).toBe('TM_ERR_LIMIT');
    }
    expect(await counts()).toEqual(before);
  });

  it('let login and refreshSession through without a token', async () => {
    for (const op of ['Mutation.login', 'Mutation.refreshSession']) {
      const r = await gqlHttp(sys.base, operation(op));
      // Wrong credentials, but past the door: the resolver answered.
      expect(r.body.errors?.[0]?.message).not.toMatch(/sign in first/);
    }
  });

  it('close a graphql-ws socket without a valid connection_init with 4401, before any data', async () => {
    for (const query of SUBSCRIPTIONS.map(operation)) {
      expect(await closeCodeOf(sys.base, query)).toEqual({ code: 4401, data: 0 });
      expect(await closeCodeOf({ base: sys.base, token: 'garbage' }, query)).toEqual({ code: 4401, data: 0 });
    }
  });

  it.each(['viewer', 'trader', 'admin'] as const)(
    'let a %s run what the role table allows, and refuse the rest with 403',
    async (role) => {
      for (const op of HTTP_OPS) {
        const r = await gqlHttp(as[role], operation(op));
        if (mayRun(role, op)) expect([op, codeOf(r.body)]).not.toContainEqual('TM_ERR_FORBIDDEN');
        else expect([op, r.status, codeOf(r.body)]).toEqual([op, 403, 'TM_ERR_FORBIDDEN']);
        // login and refreshSession answer TM_ERR_UNAUTHENTICATED for placeholder credentials.
        if (ROLE_TABLE[op] !== 'public')
          expect([op, codeOf(r.body)]).not.toContainEqual('TM_ERR_UNAUTHENTICATED');
      }
      for (const op of SUBSCRIPTIONS) {
        const errors: unknown[] = [];
        const client = wsClient(as[role]);
        const stop = client.subscribe(
          { query: operation(op) },
          { next: () => {}, error: (e) => errors.push(e), complete: () => {} },
        );
        if (mayRun(role, op)) {
          // Allowed: the subscription starts (or its placeholder arguments are refused), never 403.
          await new Promise((r) => setTimeout(r, 300));
          expect([op, JSON.stringify(errors)]).not.toContainEqual(
            expect.stringContaining('TM_ERR_FORBIDDEN'),
          );
        } else {
          await eventually(async () => errors.length > 0, `${op} refused`);
          expect([op, JSON.stringify(errors)]).toEqual([op, expect.stringContaining('TM_ERR_FORBIDDEN')]);
        }
        stop();
        await client.dispose();
      }
    },
  );

  it('refuse a viewer addSymbol and a viewer alert rule with TM_ERR_FORBIDDEN, changing nothing', async () => {
    const before = await counts();
    const add = await gqlHttp(
      as.viewer,
      'mutation { addSymbol(exchange: "test", symbol: "MSFT") { symbol } }',
    );
    expect([add.status, codeOf(add.body)]).toEqual([403, 'TM_ERR_FORBIDDEN']);
    const rule = await gqlHttp(
      as.viewer,
      'mutation { createAlertRule(input: {exchange: "test", symbol: "AAPL", condition: PRICE_ABOVE, threshold: 1}) { id } }',
    );
    expect([rule.status, codeOf(rule.body)]).toEqual([403, 'TM_ERR_FORBIDDEN']);
    // Nothing changed but the audit log, which records both refusals.
    expect(await counts()).toEqual({ ...before, audit_log: before.audit_log! + 2 });
    const { rows } = await sys.db.pool.query(
      'SELECT actor, role, operation, result FROM audit_log ORDER BY id DESC LIMIT 2',
    );
    expect(rows).toEqual([
      { actor: 'vic', role: 'viewer', operation: 'createAlertRule', result: 'TM_ERR_FORBIDDEN' },
      { actor: 'vic', role: 'viewer', operation: 'addSymbol', result: 'TM_ERR_FORBIDDEN' },
    ]);
    // The same token reads and subscribes.
    expect((await gqlHttp(as.viewer, '{ symbols { symbol } }')).body.data).toEqual({
      symbols: [{ symbol: 'AAPL' }],
    });
  });
});

describe('a graphql-ws socket whose token expires', () => {
  it('is closed with 4401 when the clock passes the expiry', async () => {
    await using sys = await startSystemDisposable();
    await createUser(sys.db.pool, TEST_AUTH.adminUser, TEST_AUTH.adminPassword, 'admin');
    const clock = new FakeClock(Date.now());
    await using topo = await topology(sys.cfg, 'expiry');
    const { app } = await buildGateway({ cfg: sys.cfg, pool: sys.db.pool, topo, log: testLog, clock });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const api = await signIn(base);
      let closed: number | null = null;
      const client = wsClient(api, {
        lazy: false,
        onNonLazyError: () => {}, // the close is what this test waits for
        on: { closed: (e) => (closed = (e as CloseEvent).code) },
      });
      await new Promise<void>((resolve) => client.on('connected', () => resolve()));
      clock.advance(14 * 60_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(closed).toBeNull();
      clock.advance(60_000);
      await eventually(async () => closed !== null, 'socket closed at expiry');
      expect(closed).toBe(4401);
      await client.dispose();
    } finally {
      await app.close();
    }
  });
});

async function startSystemDisposable(): Promise<TestSystem & AsyncDisposable> {
  const sys = await startSystem({ roles: [] });
  return Object.assign(sys, { [Symbol.asyncDispose]: () => sys.stop() });
}
