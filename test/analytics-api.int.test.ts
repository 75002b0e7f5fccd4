/**
 * The analytics over GraphQL, end to end: candles with indicators, features (range and
 * latest), quality, alert rule CRUD with argument errors, alert events with deliveries, and the
 * `alerts` subscription — all from trades published to a real nats-server, stored in a fresh
 * PostgreSQL database.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RSI } from 'technicalindicators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../actors/alerts/delivery.ts';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Trade } from '../core/protocol/index.ts';
import { type Api, collect, gql, signIn, wsClient } from './support/graphql.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'ETH/USDT';
const START = Date.UTC(2024, 0, 3, 0, 0, 0);

describe('analytics over GraphQL', () => {
  let sys: TestSystem;
  let base: string;
  /** Signed in as the test admin: every GraphQL door needs a token. */
  let api: Api;
  let hook: Server;
  let hookUrl: string;
  const received: { body: string; valid: boolean }[] = [];
  const SECRET = 'a-webhook-secret-of-some-length';

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const ts = String(req.headers['x-tickmesh-timestamp']);
        const sig = String(req.headers['x-tickmesh-signature']);
        received.push({ body, valid: verifySignature(SECRET, ts, body, sig) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    sys = await startSystem({
      exchange: { id: EX, symbols: [SYM] },
      // The receiver is a local http server: allow-listed, as an internal receiver would be.
      config: { alerts: { webhooks: { allow: [{ host: '127.0.0.1', http: true }] } } },
    });
    base = sys.base;
    api = await signIn(base);
  });

  afterAll(async () => {
    await sys?.stop();
    hook?.close();
  });

  it('refuses bad alert rules with clear errors', async () => {
    const create = (input: Record<string, unknown>) =>
      gql(api, 'mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id } }', { i: input });
    const code = (r: Awaited<ReturnType<typeof create>>) => r.errors?.[0]?.extensions?.code;
    const ok = { exchange: EX, symbol: SYM, condition: 'PRICE_ABOVE', threshold: 100 };
    expect(code(await create({ ...ok, symbol: 'NOPE/USDT' }))).toBe('TM_ERR_UNKNOWN_SYMBOL');
    expect(code(await create({ ...ok, condition: 'RSI_ABOVE', threshold: 250 }))).toBe('TM_ERR_BAD_ARGUMENT');
    expect(code(await create({ ...ok, timeframe: '2m' }))).toBe('TM_ERR_BAD_ARGUMENT');
    expect(code(await create({ ...ok, webhook: { url: 'ftp://x', secret: SECRET } }))).toBe(
      'TM_ERR_BAD_ARGUMENT',
    );
    expect(code(await create({ ...ok, webhook: { url: hookUrl, secret: 'short' } }))).toBe(
      'TM_ERR_BAD_ARGUMENT',
    );
    expect((await create({ ...ok, condition: 'NOT_A_CONDITION' })).errors?.length).toBe(1);
    const upd = await gql(
      api,
      'mutation { updateAlertRule(id: "r-none", input: {exchange: "test", symbol: "ETH/USDT", condition: PRICE_BELOW, threshold: 1}) { id } }',
    );
    expect(upd.errors?.[0]?.extensions?.code).toBe('TM_ERR_NOT_FOUND');
    expect((await gql(api, 'mutation { deleteAlertRule(id: "r-none") }')).data).toEqual({
      deleteAlertRule: false,
    });
  });

  it('serves indicators, features, quality and alerts computed from the trades', async () => {
    const trades: Trade[] = syntheticTrades({ start: START, count: 4000, seed: 11 });
    const high = Math.max(...trades.map((t) => t.px));
    // A rule that fires when the price first climbs above the running level halfway through.
    const level = trades[2000]!.px * 1.002;
    const rule = await gql<{ createAlertRule: { id: string; webhookUrl: string } }>(
      api,
      `mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id webhookUrl condition threshold } }`,
      {
        i: {
          exchange: EX,
          symbol: SYM,
          condition: 'PRICE_ABOVE',
          threshold: level,
          oneTime: true,
          webhook: { url: hookUrl, secret: SECRET },
        },
      },
    );
    expect(rule.errors).toBeUndefined();
    const ruleId = rule.data!.createAlertRule.id;
    expect(rule.data!.createAlertRule.webhookUrl).toBe(hookUrl);
    expect(high).toBeGreaterThan(level);
    const listed = await gql<{ alertRules: { id: string }[] }>(
      api,
      `{ alertRules(exchange: "test") { id } }`,
    );
    expect(listed.data?.alertRules.map((r) => r.id)).toEqual([ruleId]);

    const ws = wsClient(api);
    const live = collect<{ ruleId: string; condition: string }>(
      ws,
      `subscription { alerts(exchange: "test") { id ruleId condition value barTime closedBar } }`,
    );
    await eventually(
      async () =>
        (await fetch(`${sys.metrics}/metrics`).then((r) => r.text())).includes(
          'tickmesh_graphql_subscriptions 1',
        ),
      'subscription registered',
    );
    // Rules load at actor start and on the change message; give the actor the new rule first.
    await eventually(async () => {
      const r = await gql<{ actors: { id: string; status: string }[] }>(api, '{ actors { id status } }');
      return r.data?.actors.some((a) => a.id === 'symbol.test.ETH-USDT' && a.status === 'running') ?? false;
    }, 'symbol actor running');

    await using topo = await topology(sys.cfg);
    // Past timestamps: published as a replay, so freshness is not judged (live ones would be stale).
    await publishTrades(topo.js, EX, SYM, trades, 50, 'replay');
    const closer = { id: '999999', ts: trades.at(-1)!.ts + 2 * 3600_000, px: trades.at(-1)!.px, qty: 1 };
    await publishTrades(topo.js, EX, SYM, [closer], 50, 'replay');
    const want = barsFromTrades(EX, SYM, '1m', trades);

    // Candles carry indicators equal to technicalindicators' batch RSI over the same closes.
    const rows = await eventually(async () => {
      const r = await gql<{
        candles: { timeMs: number; close: number; indicators: { rsi14: number | null } | null }[];
      }>(
        api,
        `{ candles(exchange: "test", symbol: "ETH/USDT", timeframe: "1m", from: "${START}", limit: 5000) {
             timeMs close indicators { rsi14 macd { macd signal histogram } bollinger { upper middle lower }
             sma20 ema12 vwap stochastic { k d } atr14 adx { adx plusDI minusDI } volumeSma20 } } }`,
      );
      const c = r.data?.candles ?? [];
      return c.length === want.length && c.every((x) => x.indicators) ? c : null;
    }, 'candles with indicators');
    const closes = want.map((b) => b.c);
    const rsi = RSI.calculate({ period: 14, values: closes });
    expect(rows[13]!.indicators!.rsi14).toBeNull();
    for (let i = 14; i < rows.length; i++)
      expect(Number(rows[i]!.indicators!.rsi14!.toFixed(2))).toBeCloseTo(rsi[i - 14]!, 6);

    const feats = await eventually(async () => {
      const r = await gql<{
        features: { timeMs: number; featureVersion: number; values: Record<string, unknown> }[];
      }>(
        api,
        `{ features(exchange: "test", symbol: "ETH/USDT", timeframe: "1m", from: "${START}", limit: 5000) {
             timeMs featureVersion values } }`,
      );
      const f = r.data?.features ?? [];
      return f.length === want.length ? f : null;
    }, 'feature rows');
    expect(feats.every((f) => f.featureVersion === 1)).toBe(true);
    expect(feats[5]!.values.ret5).toBeCloseTo(want[5]!.c / want[0]!.c - 1, 12);
    expect(feats[0]!.values.ret1).toBeNull();
    const latest = await gql<{ latestFeatures: { timeMs: number; values: Record<string, unknown> } | null }>(
      api,
      `{ latestFeatures(exchange: "test", symbol: "ETH/USDT", timeframe: "1m") { timeMs featureVersion values } }`,
    );
    expect(latest.data?.latestFeatures?.timeMs).toBe(want.at(-1)!.t);

    // Quality rows reach the database with the bars' analytics, not necessarily with the last
    // feature row: wait for them.
    const quality = await eventually(async () => {
      const r = await gql<{ quality: { score: number; trades: number; accepted: number } }>(
        api,
        `{ quality(exchange: "test", symbol: "ETH/USDT", minutes: 10080) { score trades accepted checks { check quarantined flagged } updatedAt } }`,
      );
      return (r.data?.quality.trades ?? 0) > 3000 ? r : null;
    }, 'quality reports of the trades');
    // Stored minutes report the trades judged before each first close; all trades here are clean.
    expect(quality.data?.quality.score).toBeGreaterThan(0.5);
    expect(quality.data?.quality.accepted).toBe(quality.data?.quality.trades);

    // The one-time rule fired exactly once: subscription, event row, signed webhook delivery.
    await live.until((items) => items.length >= 1, 'alert on the subscription');
    const events = await eventually(async () => {
      const r = await gql<{
        alertEvents: {
          ruleId: string;
          deliveries: { channel: string; status: string; attempts: number }[];
        }[];
      }>(api, `{ alertEvents(exchange: "test") { id ruleId value deliveries { channel status attempts } } }`);
      const e = r.data?.alertEvents ?? [];
      return e.length === 1 && e[0]!.deliveries[0]?.status === 'delivered' ? e : null;
    }, 'alert delivered');
    expect(events[0]!.ruleId).toBe(ruleId);
    expect(received).toHaveLength(1);
    expect(received[0]!.valid).toBe(true);
    expect(JSON.parse(received[0]!.body).event.ruleId).toBe(ruleId);
    expect(live.items.map((i) => i.ruleId)).toEqual([ruleId]);
    live.dispose();
    await ws.dispose();

    const del = await gql(api, `mutation { deleteAlertRule(id: "${ruleId}") }`);
    expect(del.data).toEqual({ deleteAlertRule: true });
  });
});
