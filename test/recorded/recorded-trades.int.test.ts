/**
 * Recorded market data tier (runs when ../shared/data is present, see vitest.config.ts):
 * 12,477 real Binance XRP/ETH trades with real bursts and long quiet stretches go through the
 * running pipeline; the stored bars of every timeframe equal the bars computed directly from
 * the recorded trade list.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../../analytics/bar-builder.ts';
import { TIMEFRAMES, type Trade } from '../../core/protocol/index.ts';
import { eventually, topology } from '../support/infra.ts';
import { startSystem, storedBars, type TestSystem } from '../support/system.ts';
import { publishTrades } from '../support/trades.ts';

export const RECORDED_TRADES = new URL(
  '../../../shared/data/binance-XRP_ETH-trades-2019-10.json.gz',
  import.meta.url,
);

function loadTrades(): Trade[] {
  const rows = JSON.parse(gunzipSync(readFileSync(RECORDED_TRADES)).toString()) as [
    number,
    string,
    unknown,
    string,
    number,
    number,
    number,
  ][];
  return rows.map(([ts, id, , side, px, qty]) => ({
    id: String(id),
    ts,
    px,
    qty,
    side: side === 'sell' ? 'sell' : 'buy',
  }));
}

describe('recorded Binance XRP/ETH trades through the pipeline', () => {
  let sys: TestSystem;

  beforeAll(async () => {
    sys = await startSystem({
      exchange: { id: 'binance', symbols: ['XRP/ETH'] },
      roles: ['supervisor', 'worker'],
    });
  });

  afterAll(async () => sys?.stop());

  it('stores exactly the bars computed from the recorded trades, gaps included', async () => {
    const trades = loadTrades();
    expect(trades).toHaveLength(12_477);
    await using topo = await topology(sys.cfg);
    await publishTrades(topo.js, 'binance', 'XRP/ETH', trades, 100);
    const closer: Trade = {
      id: 'closer',
      ts: trades.at(-1)!.ts + 3 * 86_400_000,
      px: trades.at(-1)!.px,
      qty: 0,
    };
    await publishTrades(topo.js, 'binance', 'XRP/ETH', [closer]);
    for (const tf of TIMEFRAMES) {
      const want = barsFromTrades('binance', 'XRP/ETH', tf, trades);
      const rows = await eventually(async () => {
        const r = await storedBars(sys.db.pool, tf);
        return r.length >= want.length ? r : null;
      }, `${tf} bars`);
      expect(rows.length).toBe(want.length);
      rows.forEach((r, i) => {
        const b = want[i]!;
        expect([r.t, r.open, r.high, r.low, r.close, r.trades, r.gap]).toEqual([
          b.t,
          b.o,
          b.h,
          b.l,
          b.c,
          b.n,
          b.gap,
        ]);
        expect(r.volume).toBeCloseTo(b.vol, 6);
      });
      if (tf === '1m') expect(want.filter((b) => b.gap > 0).length).toBeGreaterThan(100);
    }
  });
});
