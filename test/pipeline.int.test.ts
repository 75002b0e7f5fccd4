/**
 * End to end on a real nats-server and a fresh PostgreSQL database: trades with past
 * timestamps → symbol actor → BARS → writer → candles, read back over GraphQL (HTTP) and over a
 * graphql-ws subscription, without waiting for wall-clock minutes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Config } from '../core/config.ts';
import type { Topology } from '../core/nats.ts';
import { type Bar, encodeJson, stateKeys, subjects, type Timeframe } from '../core/protocol/index.ts';
import { type Api, collect, gql, signIn, wsClient } from './support/graphql.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'BTC/USDT';
const START = Date.UTC(2024, 0, 2, 0, 0, 0);

interface CandleRow {
  timeMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  gap: number;
  closed: boolean;
  revision: number;
}

const CANDLES = `query($tf: String!, $from: String) {
  candles(exchange: "test", symbol: "BTC/USDT", timeframe: $tf, from: $from, limit: 5000) {
    timeMs open high low close volume trades gap closed revision
  }
}`;

function expectSameBars(got: CandleRow[], want: Bar[]) {
  expect(got.map((c) => c.timeMs)).toEqual(want.map((b) => b.t));
  got.forEach((c, i) => {
    const b = want[i]!;
    expect(c).toMatchObject({
      open: b.o,
      high: b.h,
      low: b.l,
      close: b.c,
      trades: b.n,
      gap: b.gap,
      closed: true,
    });
    expect(c.volume).toBeCloseTo(b.vol, 9);
  });
}

describe('pipeline end to end', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;
  let base: string;
  /** Signed in as the test admin: every GraphQL door needs a token. */
  let api: Api;

  beforeAll(async () => {
    sys = await startSystem({ exchange: { id: 'test', symbols: ['BTC/USDT', 'BRK.B'] } });
    ({ db, cfg, base } = sys);
    api = await signIn(base);
  });

  afterAll(async () => sys?.stop());

  /** Collects the reasons of the quarantine messages of one symbol. */
  function quarantineReasons(topo: Topology, sym: string) {
    const reasons: string[] = [];
    const sub = topo.nc.subscribe(subjects.quarantine(EX, sym), {
      callback: (_e, m) => void reasons.push(JSON.parse(new TextDecoder().decode(m.data)).reason),
    });
    return { reasons, sub };
  }

  async function actorHealth(id: string) {
    const r = await gql<{ actors: { id: string; status: string; restarts: number }[] }>(
      api,
      '{ actors { id status restarts } }',
    );
    return r.data?.actors.find((a) => a.id === id);
  }

  it('lists symbols and shows every desired actor running', async () => {
    const symbols = await gql<{ symbols: unknown[] }>(api, '{ symbols { exchange symbol active } }');
    expect(symbols.data?.symbols).toEqual([
      { exchange: 'test', symbol: 'BRK.B', active: true },
      { exchange: 'test', symbol: 'BTC/USDT', active: true },
    ]);
    const ids = await eventually(async () => {
      const r = await gql<{ actors: { id: string; status: string }[] }>(
        api,
        '{ actors { id kind status restarts } }',
      );
      const running = r.data?.actors.filter((a) => a.status === 'running').map((a) => a.id) ?? [];
      return running.length === 4 ? running : null;
    }, 'four running actors');
    expect(ids).toEqual(['alerts.dispatcher', 'symbol.test.BRK_B', 'symbol.test.BTC-USDT', 'writer.bars']);
  });

  it('turns trades with past timestamps into closed bars, over GraphQL and a subscription', async () => {
    const ws = wsClient(api);
    const sub = collect<CandleRow>(
      ws,
      'subscription { candles(exchange: "test", symbol: "BTC/USDT", timeframe: "1m") { timeMs open high low close volume trades gap closed revision } }',
    );
    // Let the subscription reach the gateway's NATS subscription before trades flow.
    await eventually(
      async () =>
        (await fetch(`${sys.metrics}/metrics`).then((r) => r.text())).includes(
          'tickmesh_graphql_subscriptions 1',
        ),
      'subscription registered',
    );
    const trades = syntheticTrades({ start: START, count: 3000 });
    // A final trade hours later closes every bar up to 4h; it stays in a forming bar itself.
    const closer = {
      id: '999999',
      ts: START + 6 * 3600_000,
      px: trades.at(-1)!.px,
      qty: 1,
      side: 'buy' as const,
    };
    await using topo = await topology(cfg);
    await publishTrades(topo.js, EX, SYM, trades);
    await publishTrades(topo.js, EX, SYM, [closer]);

    const want: Record<Timeframe, Bar[]> = {} as Record<Timeframe, Bar[]>;
    for (const tf of ['1m', '5m', '15m', '1h', '4h'] as const) want[tf] = barsFromTrades(EX, SYM, tf, trades);
    expect(want['1m'].some((b) => b.gap > 0)).toBe(true);

    for (const tf of ['1m', '5m', '15m', '1h', '4h'] as const) {
      const rows = await eventually(async () => {
        const r = await gql<{ candles: CandleRow[] }>(api, CANDLES, { tf, from: String(START) });
        return r.data && r.data.candles.length >= want[tf].length ? r.data.candles : null;
      }, `${tf} candles`);
      expectSameBars(rows, want[tf]);
    }
    // The subscription saw forming updates and every closed 1m bar, in order.
    await sub.until((items) => items.filter((c) => c.closed).length >= want['1m'].length, 'closed 1m bars');
    expect(sub.items.some((c) => !c.closed)).toBe(true);
    expectSameBars(
      sub.items.filter((c) => c.closed),
      want['1m'],
    );
    expect(sub.errors).toEqual([]);
    sub.dispose();
    await ws.dispose();
  });

  it('ignores a re-published batch (Nats-Msg-Id) and changes no stored bar', async () => {
    const before = await db.pool.query(
      'SELECT exchange, symbol, timeframe, ts, open, high, low, close, volume, updated_at FROM candles ORDER BY 1,2,3,4',
    );
    await using topo = await topology(cfg);
    const again = await publishTrades(topo.js, EX, SYM, syntheticTrades({ start: START, count: 3000 }));
    expect(again.every((a) => a.duplicate)).toBe(true);
    const after = await db.pool.query(
      'SELECT exchange, symbol, timeframe, ts, open, high, low, close, volume, updated_at FROM candles ORDER BY 1,2,3,4',
    );
    expect(after.rows).toEqual(before.rows);
  });

  it('quarantines malformed frames and bad trades without crashing or losing good trades', async () => {
    await using topo = await topology(cfg);
    const { reasons: quarantined, sub: qsub } = quarantineReasons(topo, 'BRK.B');
    const t0 = START + 86_400_000;
    await topo.js.publish(subjects.trade(EX, 'BRK.B'), new TextEncoder().encode('{not json'), {
      msgID: 'garbage-1',
    });
    await topo.js.publish(
      subjects.trade(EX, 'BRK.B'),
      encodeJson({
        v: 1,
        ex: EX,
        sym: 'BRK.B',
        trades: [
          { id: 'a1', ts: t0 + 1000, px: 10, qty: 1 },
          { id: 'a2', ts: t0 + 2000, px: -5, qty: 1 },
          { id: 'a3', ts: t0 + 3000, px: Number.NaN, qty: 1 },
          { id: 'a4', ts: t0 + 4000, px: 10.6, qty: 2 },
        ],
      }),
      { msgID: 'mixed-1' },
    );
    await topo.js.publish(
      subjects.trade(EX, 'BRK.B'),
      encodeJson({ v: 1, ex: EX, sym: 'BRK.B', trades: [{ id: 'a5', ts: t0 + 120_000, px: 11, qty: 1 }] }),
      { msgID: 'close-1' },
    );
    const row = await eventually(async () => {
      const r = await db.pool.query(
        `SELECT open, high, low, close, volume, trades FROM candles WHERE symbol = 'BRK.B' AND timeframe = '1m'`,
      );
      return r.rows[0];
    }, 'BRK.B bar');
    expect(row).toEqual({ open: 10, high: 10.6, low: 10, close: 10.6, volume: 3, trades: 2 });
    await eventually(async () => quarantined.length >= 3, 'three quarantine messages');
    expect(quarantined[0]).toMatch(/not JSON/);
    expect(quarantined.slice(1)).toEqual([
      'px must be a finite number > 0',
      'px must be a finite number > 0',
    ]);
    qsub.unsubscribe();
    expect(await actorHealth('symbol.test.BRK_B')).toMatchObject({ status: 'running', restarts: 0 });
  });

  it('ignores an invalid snapshot (quarantined once) and builds the bars from the stream', async () => {
    await using topo = await topology(cfg);
    const sym = 'ETH/USDT';
    const { reasons, sub: qsub } = quarantineReasons(topo, sym);
    // A snapshot the actor cannot use: its builder state lacks the forming bars.
    await topo.kv.symbolState.put(
      stateKeys.symbol(EX, sym),
      encodeJson({ v: 1, seq: 999_999, state: { ex: EX, sym } }),
    );
    const trades = syntheticTrades({ start: START, count: 300 });
    // A trade hours later closes every 1m bar of `trades`.
    const closer = { id: '999999', ts: START + 6 * 3600_000, px: trades.at(-1)!.px, qty: 1 };
    await publishTrades(topo.js, EX, sym, [...trades, closer]);
    const added = await gql(api, `mutation { addSymbol(exchange: "test", symbol: "${sym}") { active } }`);
    expect(added.data).toEqual({ addSymbol: { active: true } });
    const want = barsFromTrades(EX, sym, '1m', trades);
    const rows = await eventually(async () => {
      const r = await db.pool.query(
        `SELECT extract(epoch FROM ts) * 1000 AS t, open, high, low, close, trades FROM candles
          WHERE symbol = $1 AND timeframe = '1m' ORDER BY ts`,
        [sym],
      );
      return r.rows.length >= want.length ? r.rows : null;
    }, 'ETH/USDT bars from the start of the stream');
    expect(
      rows.slice(0, want.length).map((r) => [Number(r.t), r.open, r.high, r.low, r.close, r.trades]),
    ).toEqual(want.map((b) => [b.t, b.o, b.h, b.l, b.c, b.n]));
    await eventually(async () => reasons.length >= 1, 'snapshot quarantined');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/^snapshot: /);
    qsub.unsubscribe();
    expect(await actorHealth('symbol.test.ETH-USDT')).toMatchObject({ status: 'running', restarts: 0 });
  });
});
