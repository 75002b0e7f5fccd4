/**
 * The graphql-ws server against a real gateway, NATS and PostgreSQL: protocol violations with a
 * raw `ws` client (close codes), caps, release of every subscription (the hub back at its
 * baseline), the slow-client bound, shared execution, the refill after a NATS reconnect, and
 * forming bars published once with their newest-trade time.
 */
import type { FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../core/config.ts';
import { createPool, type Pool } from '../core/db.ts';
import { metrics } from '../core/metrics.ts';
import { connectAs, ensureTopology, type Topology } from '../core/nats.ts';
import {
  type Bar,
  decodeJson,
  encodeJson,
  SCHEMA_VERSION,
  subjects,
  TIMEFRAMES,
} from '../core/protocol/index.ts';
import { createUser } from '../core/users-store.ts';
import type { Fanout } from '../graphql/fanout.ts';
import { buildGateway } from '../graphql/gateway.ts';
import type { TopicHub } from '../graphql/topic-hub.ts';
import { collect, signIn, wsClient } from './support/graphql.ts';
import { eventually, testLog, topology } from './support/infra.ts';
import { RawWs } from './support/raw-ws.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades } from './support/trades.ts';

const CANDLES =
  'subscription($s: String!) { candles(exchange: "test", symbol: $s, timeframe: "1m") { timeMs close closed } }';
const ALERTS = 'subscription { alerts(exchange: "test") { id ruleId } }';

function bar(sym: string, t: number, closed: boolean, c = 100): Bar {
  return {
    v: SCHEMA_VERSION,
    ex: 'test',
    sym,
    tf: '1m',
    t,
    o: 100,
    h: 200,
    l: 50,
    c,
    vol: 1,
    n: 1,
    closed,
    rev: 0,
    gap: 0,
    ft: t,
    lt: t,
  };
}

async function counter(c: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await c.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}

/** Yields to the event loop until `probe` holds (no sleeps: the gateway runs in this process). */
async function settle(probe: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('graphql-ws server', () => {
  let sys: TestSystem;
  let cfg: Config;
  let pool: Pool;
  let topo: Topology;
  /** Publishes like the actors do (the gateway's user may not). */
  let pub: Topology & AsyncDisposable;
  let app: FastifyInstance;
  let hub: TopicHub;
  let fanout: Fanout;
  let base: string;
  let token: string;

  beforeAll(async () => {
    sys = await startSystem({
      exchange: { id: 'test', symbols: ['AAPL', 'MSFT', 'NVDA'] },
      roles: ['supervisor', 'worker'],
      config: {
        gateway: {
          ws: {
            initTimeoutMs: 300,
            maxSubscriptionsPerSocket: 60,
            maxSocketsPerPrincipal: 4,
            maxBufferedBytes: 64 * 1024,
            slowGraceMs: 300,
          },
        },
      },
    });
    cfg = sys.cfg;
    pool = createPool(sys.db.url, 5);
    // The gateway's own NATS user, so the refill's stream lookups run under its permissions.
    topo = await ensureTopology(await connectAs(cfg, 'gateway', 'ws-test-gateway'), cfg);
    pub = await topology(cfg, 'ws-test-publisher');
    const gw = await buildGateway({ cfg, pool, topo, log: testLog });
    app = gw.app;
    hub = gw.hub;
    fanout = (app as unknown as { fanout: Fanout }).fanout;
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    base = address.replace('127.0.0.1', 'localhost');
    token = (await signIn(base)).token;
  });

  afterAll(async () => {
    await app?.close();
    await topo?.nc.close();
    await pub?.[Symbol.asyncDispose]();
    await pool?.end();
    await sys?.stop();
  });

  const baseline = () => ({
    subscribers: hub.subscriberCount,
    topics: hub.topicCount,
    keys: fanout.executionCount,
  });

  it('closes on a duplicate subscription id (4409) and releases both subscriptions', async () => {
    const before = baseline();
    const raw = await RawWs.ready(base, token);
    raw.subscribe('dup', CANDLES, { s: 'AAPL' });
    await settle(() => hub.subscriberCount > before.subscribers, 'the first subscription');
    const closes = async () =>
      (await metrics.wsClosed.get()).values.find((v) => v.labels.reason === '4409')?.value ?? 0;
    const closesBefore = await closes();
    // Several duplicates in one burst: one close, counted once.
    for (let i = 0; i < 3; i++) raw.subscribe('dup', CANDLES, { s: 'AAPL' });
    expect(await raw.closed).toEqual({ code: 4409, reason: 'Subscriber for dup already exists' });
    expect(await closes()).toBe(closesBefore + 1);
    await settle(() => hub.subscriberCount === before.subscribers, 'hub subscribers back to baseline');
    expect(baseline()).toEqual(before);
  });

  it('closes on a second connection_init (4429) and without one in time (4408)', async () => {
    const twice = await RawWs.ready(base, token);
    twice.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    expect(await twice.closed).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
    const silent = await RawWs.open(base);
    const started = Date.now();
    expect(await silent.closed).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const anonymous = await RawWs.open(base);
    anonymous.send({ type: 'connection_init', payload: {} });
    expect((await anonymous.closed).code).toBe(4401);
  });

  it.each([
    ['a non-string query', { id: '1', type: 'subscribe', payload: { query: { kind: 'Document' } } }],
    ['a subscribe without an id', { type: 'subscribe', payload: { query: ALERTS } }],
    ['an unknown message type', { type: 'hello' }],
    ['invalid JSON', '{"type": "subscribe",'],
    ['a JSON array', '[1, 2]'],
  ])('closes with 4400 on %s', async (_what, message) => {
    const raw = await RawWs.ready(base, token);
    raw.send(message);
    expect(await raw.closed).toEqual({ code: 4400, reason: 'Invalid message received' });
  });

  it('answers queries, bad documents and refused operations with coded errors, keeping the socket', async () => {
    const raw = await RawWs.ready(base, token);
    raw.subscribe('q', '{ timeframes }');
    raw.subscribe('p', 'subscription { candles(');
    raw.subscribe('v', 'subscription { nothing }');
    raw.subscribe('deep', `subscription { alerts { ${'id '.repeat(250)} } }`);
    await raw.until((f) => f.filter((x) => x.type === 'error').length === 4, 'four errors');
    const codeOf = (id: string) => {
      const errors = raw.frames.find((f) => f.id === id)!.payload as { extensions: { code: string } }[];
      return errors[0]!.extensions.code;
    };
    expect(codeOf('q')).toBe('TM_ERR_WS_OPERATION');
    expect(codeOf('p')).toBe('GRAPHQL_PARSE_FAILED');
    expect(codeOf('v')).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(codeOf('deep')).toBe('TM_ERR_LIMIT');
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    raw.close();
  });

  it('caps subscriptions per socket and sockets per principal', async () => {
    await createUser(pool, 'capped', 'capped-password-1', 'viewer');
    const viewer = (await signIn(base, 'capped', 'capped-password-1')).token;
    const raw = await RawWs.ready(base, viewer);
    for (let i = 0; i < 61; i++) raw.subscribe(`s${i}`, CANDLES, { s: 'AAPL' });
    await raw.until((f) => f.some((x) => x.type === 'error'), 'the 61st refused');
    const refused = raw.frames.filter((f) => f.type === 'error');
    expect(refused.map((f) => f.id)).toEqual(['s60']);
    expect(JSON.stringify(refused[0]!.payload)).toMatch(/TM_ERR_LIMIT.*|subscriptions on one socket/);
    const more = [
      await RawWs.ready(base, viewer),
      await RawWs.ready(base, viewer),
      await RawWs.ready(base, viewer),
    ];
    const fifth = await RawWs.open(base);
    fifth.send({ type: 'connection_init', payload: { authorization: `Bearer ${viewer}` } });
    expect(await fifth.closed).toEqual({ code: 4429, reason: 'too many sockets for this principal (max 4)' });
    raw.close();
    await raw.closed;
    await settle(() => true, 'close handled');
    const again = await RawWs.ready(base, viewer);
    for (const s of [...more, again]) s.close();
  });

  it.each([
    ['alerts', ALERTS, undefined],
    ['candles', CANDLES, { s: 'AAPL' }],
  ])(
    'leaves the hub at its baseline after 1,000 open/close cycles of %s',
    async (_name, query, variables) => {
      const before = baseline();
      const raw = await RawWs.ready(base, token);
      for (let i = 0; i < 1000; i++) {
        raw.subscribe(`c${i}`, query, variables);
        // Half the cycles complete while the subscription is being set up, half once it runs.
        if (i % 2 === 0)
          await settle(() => hub.subscriberCount > before.subscribers, `subscription ${i} running`);
        raw.send({ id: `c${i}`, type: 'complete' });
        if (i % 2 === 0)
          await settle(() => hub.subscriberCount === before.subscribers, `subscription ${i} released`);
      }
      await settle(
        () => hub.subscriberCount === before.subscribers && fanout.executionCount === before.keys,
        'baseline',
      );
      expect(baseline()).toEqual(before);
      expect(raw.frames.filter((f) => f.type === 'error')).toEqual([]);
      raw.close();
    },
  );

  it('executes each event once for all sockets of a key and sends them identical payloads', async () => {
    const [a, b] = [await RawWs.ready(base, token), await RawWs.ready(base, token)];
    a.subscribe('x', CANDLES, { s: 'MSFT' });
    b.subscribe('y', CANDLES, { s: 'MSFT' });
    await settle(() => fanout.executionCount > 0 && hub.topicCount > 0, 'running');
    const executed = await counter(metrics.wsExecutions);
    const t0 = Date.UTC(2026, 0, 5, 10, 0);
    for (let i = 0; i < 20; i++)
      pub.nc.publish(
        subjects.bar('1m', 'test', 'MSFT'),
        encodeJson(bar('MSFT', t0 + i * 60_000, true, 100 + i)),
      );
    await a.until(() => (a.payloads.get('x')?.length ?? 0) >= 20, 'twenty bars on a');
    await b.until(() => (b.payloads.get('y')?.length ?? 0) >= 20, 'twenty bars on b');
    expect(a.payloads.get('x')).toEqual(b.payloads.get('y'));
    expect(JSON.parse(a.payloads.get('x')![19]!)).toEqual({
      data: { candles: { timeMs: t0 + 19 * 60_000, close: 119, closed: true } },
    });
    expect((await counter(metrics.wsExecutions)) - executed).toBe(20);
    a.close();
    b.close();
  });

  it('closes a client that stops reading, counted, while a normal client keeps receiving', async () => {
    const slowBefore = await counter(metrics.wsClosed, { reason: 'slow' });
    const slow = await RawWs.ready(base, token);
    for (let i = 0; i < 50; i++) slow.subscribe(`s${i}`, CANDLES, { s: 'NVDA' });
    const client = wsClient({ base, token });
    const normal = collect<{ timeMs: number; closed: boolean }>(client, CANDLES, { s: 'NVDA' });
    await settle(() => fanout.subscriberCount >= 51, 'all subscribed');
    slow.ws.pause();
    const t0 = Date.UTC(2026, 0, 6, 0, 0);
    let i = 0;
    const closing = slow.closed;
    const slowClosed = async () => (await counter(metrics.wsClosed, { reason: 'slow' })) > slowBefore;
    // Closed bars are never conflated: 50 subscriptions × ~90 B per bar fill any socket buffer.
    const deadline = Date.now() + 30_000;
    while (!(await slowClosed()) && Date.now() < deadline) {
      for (let k = 0; k < 200; k++, i++)
        pub.nc.publish(subjects.bar('1m', 'test', 'NVDA'), encodeJson(bar('NVDA', t0 + i * 60_000, true)));
      await new Promise((r) => setTimeout(r, 5));
    }
    slow.ws.resume();
    expect((await closing).code).toBe(1008);
    expect(await counter(metrics.wsClosed, { reason: 'slow' })).toBe(slowBefore + 1);
    const last = t0 + (i + 1) * 60_000;
    pub.nc.publish(subjects.bar('1m', 'test', 'NVDA'), encodeJson(bar('NVDA', last, true)));
    await normal.until(
      (items) => items.some((x) => x.timeMs === last),
      'the bar after the slow client left',
      30_000,
    );
    normal.dispose();
    await client.dispose();
  });

  it('publishes forming bars once per change, stamped with the newest trade time', async () => {
    const seen: { subject: string; data: string }[] = [];
    const watches = TIMEFRAMES.map((tf) =>
      pub.nc.subscribe(subjects.live(tf, 'test', 'AAPL'), {
        callback: (_e, m) => {
          seen.push({ subject: m.subject, data: m.string() });
        },
      }),
    );
    const start = Date.now();
    for (let k = 0; k < 15; k++) {
      const ts = Date.now();
      await publishTrades(pub.js, 'test', 'AAPL', [
        { id: `live-${start}-${k}`, ts, px: 100 + k, qty: 1, side: 'buy' },
      ]);
      await new Promise((r) => setTimeout(r, 70));
    }
    await eventually(async () => seen.length >= 10, 'forming bars');
    for (const w of watches) w.unsubscribe();
    const last = new Map<string, string>();
    for (const m of seen) {
      expect(last.get(m.subject)).not.toBe(m.data);
      last.set(m.subject, m.data);
      const parsed = decodeJson(new TextEncoder().encode(m.data));
      const nt = (parsed.ok ? (parsed.value as Bar).nt : undefined) ?? 0;
      expect(nt).toBeGreaterThanOrEqual(start - 1000);
      expect(nt).toBeLessThanOrEqual(Date.now());
    }
  });

  it('sends every subscriber the latest closed bar after a NATS reconnect', async () => {
    const t = Date.UTC(2026, 0, 7, 12, 0);
    await pub.js.publish(subjects.bar('1m', 'test', 'AAPL'), encodeJson(bar('AAPL', t, true, 123)));
    const client = wsClient({ base, token });
    const sub = collect<{ timeMs: number; close: number; closed: boolean }>(client, CANDLES, { s: 'AAPL' });
    await settle(() => hub.topicCount > 0 && fanout.executionCount > 0, 'running');
    const reconnects = await counter(metrics.natsConnectionEvents, { type: 'reconnect' });
    await sys.nats.restart();
    await eventually(
      async () => (await counter(metrics.natsConnectionEvents, { type: 'reconnect' })) > reconnects,
      'a counted reconnect',
    );
    await sub.until(
      (items) => items.some((x) => x.timeMs === t && x.close === 123 && x.closed),
      'the latest closed bar',
    );
    sub.dispose();
    await client.dispose();
  });
});
