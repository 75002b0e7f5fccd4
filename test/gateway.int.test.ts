/**
 * The gateway's contract: clear GraphQL errors for bad arguments, symbol mutations that start
 * and stop actors within seconds, ops endpoints, and one NATS subscription per topic shared by
 * every GraphQL subscriber.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../core/users-store.ts';
import { type Api, collect, gql, signIn, wsClient } from './support/graphql.ts';
import { eventually } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

describe('gateway', () => {
  let sys: TestSystem;
  let base: string;
  /** Signed in as the test admin: every GraphQL door needs a token. */
  let api: Api;

  beforeAll(async () => {
    sys = await startSystem({ exchange: { id: 'test', symbols: ['AAPL'] } });
    base = sys.base;
    api = await signIn(base);
  });

  afterAll(async () => sys?.stop());

  const candles = (args: string) => gql(api, `{ candles(${args}) { time } }`);
  const code = (r: Awaited<ReturnType<typeof gql>>) => r.errors?.[0]?.extensions?.code;

  it.each([
    ['exchange: "test", symbol: "NOPE", timeframe: "1m"', 'TM_ERR_UNKNOWN_SYMBOL', /unknown symbol "NOPE"/],
    ['exchange: "test", symbol: "AAPL", timeframe: "2m"', 'TM_ERR_UNKNOWN_TIMEFRAME', /use one of 1m, 5m/],
    ['exchange: "test", symbol: "AAPL", timeframe: "1m", limit: 100000', 'TM_ERR_LIMIT', /maximum of 5000/],
    [
      'exchange: "test", symbol: "AAPL", timeframe: "1m", limit: 0',
      'TM_ERR_BAD_ARGUMENT',
      /positive integer/,
    ],
    [
      'exchange: "test", symbol: "AAPL", timeframe: "1m", from: "yesterday-ish"',
      'TM_ERR_BAD_ARGUMENT',
      /neither ISO-8601/,
    ],
    [`exchange: "test", symbol: "${'X'.repeat(80)}", timeframe: "1m"`, 'TM_ERR_INVALID_SYMBOL', /length/],
  ])('candles(%s) fails with %s', async (args, want, message) => {
    const r = await candles(args);
    expect(code(r)).toBe(want);
    expect(r.errors?.[0]?.message).toMatch(message);
  });

  it('rejects a query that is not valid GraphQL with a GraphQL error, not a crash', async () => {
    const r = await gql(api, '{ candles(exchange: 1) { nope } }');
    expect(r.errors?.length).toBeGreaterThan(0);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('starts a symbol actor within 5 s of addSymbol and stops it within 5 s of deactivation', async () => {
    const actorIds = async () =>
      (
        (await gql<{ actors: { id: string; status: string }[] }>(api, '{ actors { id status } }')).data
          ?.actors ?? []
      )
        .filter((a) => a.status === 'running')
        .map((a) => a.id);
    await eventually(async () => (await actorIds()).includes('symbol.test.AAPL'), 'AAPL actor');
    const added = await gql(
      api,
      'mutation { addSymbol(exchange: "test", symbol: "BRK-B") { exchange symbol active } }',
    );
    expect(added.data).toEqual({ addSymbol: { exchange: 'test', symbol: 'BRK-B', active: true } });
    const t0 = Date.now();
    await eventually(async () => (await actorIds()).includes('symbol.test.BRK=2DB'), 'BRK-B actor', 5000);
    expect(Date.now() - t0).toBeLessThan(5000);
    const off = await gql(
      api,
      'mutation { setSymbolActive(exchange: "test", symbol: "BRK-B", active: false) { active } }',
    );
    expect(off.data).toEqual({ setSymbolActive: { active: false } });
    await eventually(
      async () => !(await actorIds()).includes('symbol.test.BRK=2DB'),
      'BRK-B actor gone',
      5000,
    );
    const bad = await gql(api, 'mutation { addSymbol(exchange: "nowhere", symbol: "X") { symbol } }');
    expect(code(bad)).toBe('TM_ERR_UNKNOWN_EXCHANGE');
  });

  it('restarts an actor for an admin (new session), refuses a viewer and an id that is none', async () => {
    const session = async () =>
      (
        await gql<{ actors: { id: string; status: string; sessionId: string }[] }>(
          api,
          '{ actors { id status sessionId } }',
        )
      ).data?.actors.find((a) => a.id === 'symbol.test.AAPL' && a.status === 'running')?.sessionId;
    const before = await eventually(session, 'AAPL actor running');
    const restarted = await gql(api, 'mutation { restartActor(id: "symbol.test.AAPL") }');
    expect(restarted).toEqual({ data: { restartActor: true } });
    await eventually(async () => {
      const now = await session();
      return now && now !== before ? now : null;
    }, 'AAPL actor in a new session');

    await createUser(sys.db.pool, 'restart-viewer', 'viewer password', 'viewer');
    const viewer = await signIn(base, 'restart-viewer', 'viewer password');
    const refused = await gql(viewer, 'mutation { restartActor(id: "symbol.test.AAPL") }');
    expect(code(refused)).toBe('TM_ERR_FORBIDDEN');
    expect(await session()).toBeTruthy();

    const bad = await gql(api, 'mutation { restartActor(id: "symbol.test.AAPL; drop") }');
    expect(code(bad)).toBe('TM_ERR_BAD_ARGUMENT');
  });

  it('shares one NATS subscription per topic among all GraphQL subscribers', async () => {
    const clients = [wsClient(api), wsClient(api), wsClient(api)];
    const q = 'subscription { candles(exchange: "test", symbol: "AAPL", timeframe: "5m") { time } }';
    const subs = clients.map((c) => collect(c, q));
    const metric = async (name: string) => {
      const text = await fetch(`${sys.metrics}/metrics`).then((r) => r.text());
      return Number(text.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? Number.NaN);
    };
    await eventually(
      async () => (await metric('tickmesh_graphql_subscriptions')) === 3,
      'three subscriptions',
    );
    expect(await metric('tickmesh_gateway_nats_topics')).toBe(1);
    for (const s of subs) s.dispose();
    await eventually(async () => (await metric('tickmesh_gateway_nats_topics')) === 0, 'topic released');
    await Promise.all(clients.map((c) => c.dispose()));
  });

  it('serves readiness and the dashboard, and metrics on the metrics port only', async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { nats: 'ok', database: 'ok' } });
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    const metrics = await fetch(`${sys.metrics}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/tickmesh_process_resident_memory_bytes/);
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
  });
});
