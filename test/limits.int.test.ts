/**
 * The gateway under abuse, on a real gateway, PostgreSQL and NATS: cost limits answer
 * TM_ERR_LIMIT before any resolver runs (the 2,000-alias candles query of issue 11 among them)
 * while a normal query still answers; a request over its time limit answers TM_ERR_LIMIT and
 * its SQL is cancelled; parse, validation and unexpected errors carry codes and no internals;
 * bad times and NUL bytes are TM_ERR_BAD_ARGUMENT; echoed input is cut; introspection is off;
 * /readyz keeps driver messages to the log. Request budgets are shared by two gateway replicas:
 * spent on one, the other answers 429 with Retry-After and TM_ERR_RATE_LIMITED, while health and
 * metrics answer and other principals are unaffected.
 */
import Fastify from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../core/api-keys-store.ts';
import { createPool } from '../core/db.ts';
import { opsPlugin } from '../graphql/gateway.ts';
import { startGatewayRole } from '../launcher/roles.ts';
import { type Api, gql, gqlHttp, signIn, wsClient } from './support/graphql.ts';
import { eventually, testConfig, testLog, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

type Body = {
  data?: unknown;
  errors?: { message: string; extensions?: { code?: string; requestId?: string } }[];
};
const codeOf = (b: Body) => b.errors?.[0]?.extensions?.code;
const EX = 'lim';

const candlesField = (alias: string, args = '') =>
  `${alias}: candles(exchange: "${EX}", symbol: "AAA", timeframe: "1m"${args}) { time close }`;
const NORMAL = `{ ${candlesField('c', ', limit: 10')} }`;

/** Captured log lines of a gateway (JSON objects). */
function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

describe('GraphQL limits and error hygiene', () => {
  let sys: TestSystem;
  let admin: Api;
  let logged: Awaited<ReturnType<typeof startGatewayRole>>;
  const captured = captureLog();
  beforeAll(async () => {
    sys = await startSystem({
      roles: ['gateway'],
      exchange: { id: EX, symbols: ['AAA'] },
      config: { gateway: { limits: { maxDepth: 2, requestTimeoutMs: 1500 } } },
    });
    admin = await signIn(sys.base);
    logged = await startGatewayRole(
      testConfig(sys.nats, sys.db, { gateway: { limits: { clientErrorLogsPerSecond: 3 } } }),
      captured.log,
    );
  });
  afterAll(async () => {
    await logged?.stop();
    await sys?.stop();
  });

  it('refuse the 2,000-alias candles query with TM_ERR_LIMIT while a normal query answers', async () => {
    const attack = `{ ${Array.from({ length: 2000 }, (_, i) => candlesField(`a${i}`, ', limit: 5000')).join(' ')} }`;
    expect(attack.length).toBeGreaterThan(150_000);
    const [refused, normal] = await Promise.all([gqlHttp(admin, attack), gqlHttp(admin, NORMAL)]);
    expect(refused.status).toBe(400);
    expect(codeOf(refused.body)).toBe('TM_ERR_LIMIT');
    expect(refused.body.data).toBeNull();
    expect(normal.status).toBe(200);
    expect(normal.body).toEqual({ data: { c: [] } });
    // The same attack under the size limit meets the alias limit.
    const aliases = `{ ${Array.from({ length: 21 }, (_, i) => candlesField(`a${i}`, ', limit: 1')).join(' ')} }`;
    const r = await gqlHttp(admin, aliases);
    expect([r.status, codeOf(r.body), r.body.errors?.[0]?.message]).toEqual([
      400,
      'TM_ERR_LIMIT',
      'root fields and aliases of an operation exceeds the maximum of 20',
    ]);
  });

  it('refuse a row budget, depth or fragment bomb over the limit, with variables too', async () => {
    const fiveBig = `{ ${Array.from({ length: 5 }, (_, i) => candlesField(`a${i}`, ', limit: 5000')).join(' ')} }`;
    expect(codeOf((await gqlHttp(admin, fiveBig)).body)).toBe('TM_ERR_LIMIT');
    const byVariable = `query($n: Int) { ${Array.from({ length: 5 }, (_, i) => candlesField(`a${i}`, ', limit: $n')).join(' ')} }`;
    expect((await gqlHttp(admin, byVariable, { n: 10 })).body.errors).toBeUndefined();
    const big = await gqlHttp(admin, byVariable, { n: 5000 });
    expect([big.status, codeOf(big.body)]).toEqual([400, 'TM_ERR_LIMIT']);
    expect(big.body.errors?.[0]?.message).toMatch(/rows/);
    // maxDepth is 2 in this system: candles → indicators → macd is 3 levels below the root.
    const deep = `{ candles(exchange: "${EX}", symbol: "AAA", timeframe: "1m") { indicators { macd { macd } } } }`;
    expect((await gqlHttp(admin, deep)).body.errors?.[0]?.message).toBe(
      'query depth exceeds the maximum of 2',
    );
    const layers = Array.from(
      { length: 10 },
      (_, i) => `fragment F${i} on Exchange { ${Array.from({ length: 5 }, () => `...F${i + 1}`).join(' ')} }`,
    );
    const bomb = `{ exchanges { ...F0 } } ${layers.join(' ')} fragment F10 on Exchange { id }`;
    expect(codeOf((await gqlHttp(admin, bomb)).body)).toBe('TM_ERR_LIMIT');
    expect(codeOf((await gqlHttp(admin, NORMAL)).body)).toBeUndefined();
  });

  it('answer TM_ERR_LIMIT for a request over its time limit, and cancel its SQL', async () => {
    const locker = await sys.db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE candles IN ACCESS EXCLUSIVE MODE');
      const r = await gqlHttp(admin, NORMAL);
      expect([r.status, codeOf(r.body), r.body.errors?.[0]?.message]).toEqual([
        400,
        'TM_ERR_LIMIT',
        'request time (ms) exceeds the maximum of 1500',
      ]);
      // Still holding the lock: the gateway's statement is gone all the same (cancelled).
      await eventually(async () => {
        const { rows } = await sys.db.pool.query(
          `SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'tickmesh'
              AND wait_event_type = 'Lock' AND query ILIKE '%FROM candles%'`,
        );
        return rows[0].n === 0;
      }, 'the gateway statement waiting on the lock to be cancelled');
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect((await gqlHttp(admin, NORMAL)).body).toEqual({ data: { c: [] } });
  });

  it('code parse and validation errors, and keep introspection off', async () => {
    const parseFailed = await gqlHttp(admin, '{ candles(');
    expect([parseFailed.status, codeOf(parseFailed.body)]).toEqual([400, 'GRAPHQL_PARSE_FAILED']);
    const invalid = await gqlHttp(admin, '{ nope }');
    expect([invalid.status, codeOf(invalid.body)]).toEqual([400, 'GRAPHQL_VALIDATION_FAILED']);
    const badVariable = await gqlHttp(admin, `query($n: Int) { ${candlesField('c', ', limit: $n')} }`, {
      n: 'many',
    });
    expect([badVariable.status, codeOf(badVariable.body)]).toEqual([400, 'GRAPHQL_VALIDATION_FAILED']);
    const schema = await gqlHttp(admin, '{ __schema { types { name } } }');
    expect([schema.status, codeOf(schema.body)]).toEqual([400, 'GRAPHQL_VALIDATION_FAILED']);
    expect(schema.body.errors?.[0]?.message).toMatch(/introspection has been disabled/);
    expect((await gql(admin, '{ __typename }')).data).toEqual({ __typename: 'Query' });
    const post = (body: string) =>
      fetch(`${sys.base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
        body,
      });
    const badJson = await post('{"query": "{ timeframes }"');
    expect([badJson.status, codeOf((await badJson.json()) as Body)]).toEqual([400, 'GRAPHQL_PARSE_FAILED']);
    const huge = await post(JSON.stringify({ query: `{ timeframes } # ${'x'.repeat(300_000)}` }));
    expect([huge.status, codeOf((await huge.json()) as Body)]).toEqual([413, 'TM_ERR_LIMIT']);
  });

  it('refuse out-of-range times and NUL bytes as TM_ERR_BAD_ARGUMENT, and cut echoed input', async () => {
    const far = await gqlHttp(admin, `{ ${candlesField('c', ', from: "99999999999999999"')} }`);
    expect([far.status, codeOf(far.body)]).toEqual([400, 'TM_ERR_BAD_ARGUMENT']);
    expect(far.body.errors?.[0]?.message).toMatch(/^argument from: .* outside the years 0000 to 9999$/);
    const literal = await gqlHttp(
      admin,
      `{ candles(exchange: "${EX}", symbol: "A\\u0000A", timeframe: "1m") { time } }`,
    );
    expect([literal.status, codeOf(literal.body)]).toEqual([400, 'TM_ERR_BAD_ARGUMENT']);
    const variable = await gqlHttp(
      admin,
      'query($s: String!) { candles(exchange: "lim", symbol: $s, timeframe: "1m") { time } }',
      { s: 'AAA\u0000' },
    );
    expect(variable.body.errors?.[0]).toMatchObject({
      message: 'argument $s: contains a NUL character',
      extensions: { code: 'TM_ERR_BAD_ARGUMENT' },
    });
    const long = 'Z'.repeat(5000);
    const echoed = await gqlHttp(
      admin,
      `{ candles(exchange: "${EX}", symbol: "${long}", timeframe: "1m") { time } }`,
    );
    const message = echoed.body.errors?.[0]?.message ?? '';
    expect(message).toContain('Z'.repeat(64));
    expect(message).not.toContain('Z'.repeat(65));
    const unknownField = await gqlHttp(admin, `{ ${'q'.repeat(5000)} }`);
    expect(unknownField.body.errors?.[0]?.message.length).toBeLessThan(200);
  });

  it('answer an unexpected error as "internal error" with a request id, details in the log only', async () => {
    const target = { base: logged.url, token: admin.token };
    await sys.db.pool.query('ALTER TABLE exchanges RENAME TO exchanges_moved');
    let r: { status: number; body: Body };
    try {
      r = await gqlHttp(target, '{ exchanges { id } }');
    } finally {
      await sys.db.pool.query('ALTER TABLE exchanges_moved RENAME TO exchanges');
    }
    expect(r.status).toBe(500);
    const error = r.body.errors?.[0];
    expect(error).toMatchObject({ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(error?.extensions?.requestId).toEqual(expect.any(String));
    expect(JSON.stringify(r.body)).not.toMatch(/relation|exchanges_moved|postgres/i);
    const line = captured.lines.find((l) => l.requestId === error?.extensions?.requestId);
    expect(line).toMatchObject({ level: 50, err: { message: 'relation "exchanges" does not exist' } });
  });

  it('log client errors at warn, a few lines per second, with long input cut', async () => {
    const target = { base: logged.url, token: admin.token };
    const before = captured.lines.length;
    const long = 'Y'.repeat(20_000);
    for (let i = 0; i < 30; i++)
      await gqlHttp(target, `{ candles(exchange: "${EX}", symbol: "${long}", timeframe: "1m") { time } }`);
    const warned = captured.lines.slice(before).filter((l) => l.msg === 'GraphQL client error');
    expect(warned.length).toBeGreaterThan(0);
    expect(warned.every((l) => l.level === 40 && l.code === 'TM_ERR_INVALID_SYMBOL')).toBe(true);
    // 3 lines a second: 30 requests would need 10 seconds to be logged in full.
    expect(warned.length).toBeLessThan(30);
    expect(JSON.stringify(captured.lines.slice(before))).not.toContain('Y'.repeat(65));
  });

  it('/readyz says the database is unreachable without the driver message', async () => {
    await using topo = await topology(sys.cfg);
    const pool = createPool('postgres://someone:secret-pw@127.0.0.1:1/nowhere', 1);
    const app = Fastify({ logger: false });
    await app.register(opsPlugin({ pool, topo }));
    try {
      const r = await app.inject('/readyz');
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual({ ready: false, checks: { nats: 'ok', database: 'unreachable' } });
      expect(r.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|someone/);
    } finally {
      await app.close();
      await pool.end();
    }
  });
});

describe('request budgets shared by two gateway replicas', () => {
  let sys: TestSystem;
  let replicaB: Awaited<ReturnType<typeof startGatewayRole>>;
  const budget = (points: number) => ({ points, durationSec: 60 });
  beforeAll(async () => {
    sys = await startSystem({
      roles: ['gateway'],
      exchange: { id: EX, symbols: ['AAA'] },
      config: {
        gateway: {
          rateLimits: { query: budget(6), mutation: budget(2), login: budget(3), subscribe: budget(2) },
        },
      },
    });
    replicaB = await startGatewayRole(sys.cfg, testLog);
  });
  afterAll(async () => {
    await replicaB?.stop();
    await sys?.stop();
  });

  const keyFor = async (name: string) => (await createApiKey(sys.db.pool, 'admin', name, 'admin')).key;

  it('answer 429 with Retry-After on B once a principal spent its budget on A', async () => {
    const [spender, other] = [await keyFor('spender'), await keyFor('other')];
    for (let i = 0; i < 6; i++)
      expect((await gqlHttp({ base: sys.base, token: spender }, NORMAL)).body).toEqual({ data: { c: [] } });
    const res = await fetch(`${replicaB.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${spender}` },
      body: JSON.stringify({ query: NORMAL }),
    });
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await res.json()) as Body;
    expect(codeOf(body)).toBe('TM_ERR_RATE_LIMITED');
    expect(body.errors?.[0]?.message).toMatch(/^too many query requests: try again in \d+ s$/);
    // Also on A, and health and readiness stay exempt (metrics are on their own port).
    expect((await gqlHttp({ base: sys.base, token: spender }, NORMAL)).status).toBe(429);
    for (const path of ['/healthz', '/readyz'])
      expect((await fetch(`${replicaB.url}${path}`)).status).toBe(200);
    expect((await fetch(`${sys.metrics}/metrics`)).status).toBe(200);
    // Another principal has its own budget.
    expect((await gqlHttp({ base: replicaB.url, token: other }, NORMAL)).body).toEqual({ data: { c: [] } });
  });

  it('give mutations a smaller budget than queries', async () => {
    const key = await keyFor('mutator');
    const restart = 'mutation { restartActor(id: "not an actor") }';
    for (let i = 0; i < 2; i++)
      expect(codeOf((await gqlHttp({ base: sys.base, token: key }, restart)).body)).toBe(
        'TM_ERR_BAD_ARGUMENT',
      );
    const over = await gqlHttp({ base: replicaB.url, token: key }, restart);
    expect([over.status, codeOf(over.body)]).toEqual([429, 'TM_ERR_RATE_LIMITED']);
    expect(over.body.errors?.[0]?.message).toMatch(/too many mutation requests/);
    expect((await gqlHttp({ base: sys.base, token: key }, NORMAL)).body).toEqual({ data: { c: [] } });
  });

  it('charge each subscription started over graphql-ws to the subscribe budget', async () => {
    const client = wsClient({ base: replicaB.url, token: await keyFor('subscriber') });
    const subscription = `subscription { candles(exchange: "${EX}", symbol: "AAA", timeframe: "1m") { time } }`;
    const outcomes: unknown[][] = [];
    const started = Array.from({ length: 3 }, (_, i) => {
      outcomes[i] = [];
      return new Promise<void>((resolve) => {
        client.subscribe(
          { query: subscription },
          {
            next: () => {},
            error: (e) => {
              outcomes[i]!.push(e);
              resolve();
            },
            complete: () => resolve(),
          },
        );
      });
    });
    try {
      await Promise.race(started);
      const refused = outcomes.flat() as { extensions?: { code?: string } }[][];
      expect(refused).toHaveLength(1);
      expect(refused[0]?.[0]?.extensions?.code).toBe('TM_ERR_RATE_LIMITED');
    } finally {
      await client.dispose();
    }
  });

  it('count logins per client address', async () => {
    for (let i = 0; i < 3; i++) await signIn(i % 2 ? replicaB.url : sys.base);
    const r = await gqlHttp(
      sys.base,
      'mutation { login(username: "admin", password: "test-admin-password") { accessToken } }',
    );
    expect([r.status, codeOf(r.body)]).toEqual([429, 'TM_ERR_RATE_LIMITED']);
    expect(r.body.errors?.[0]?.message).toMatch(/too many login requests/);
  });
});
