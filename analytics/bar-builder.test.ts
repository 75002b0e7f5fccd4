import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Bar, TIMEFRAMES, type Trade } from '../core/protocol/index.ts';
import { BarBuilder, type BuilderState, barsFromTrades, emptyState } from './bar-builder.ts';

const T0 = Date.UTC(2024, 0, 2, 0, 0, 0);
const opts = { graceMs: 1000, revisionWindow: 10 };
let seq = 0;
const tr = (ts: number, px: number, qty = 1): Trade => ({ id: String(++seq), ts, px, qty });

/** Latest revision of every closed bar, keyed tf:t. */
function latest(bars: Bar[]): Map<string, Bar> {
  const m = new Map<string, Bar>();
  for (const b of bars) {
    const k = `${b.tf}:${b.t}`;
    const prev = m.get(k);
    if (!prev || b.rev >= prev.rev) m.set(k, b);
  }
  return m;
}

const strip = ({ rev: _r, ...b }: Bar) => b;

describe('BarBuilder', () => {
  it('builds a 1m bar and closes it only after the grace on the exchange clock', () => {
    const b = new BarBuilder(emptyState('sim', 'BTC/USDT'), opts);
    b.applyTrades([tr(T0 + 1000, 10), tr(T0 + 2000, 12), tr(T0 + 3000, 9), tr(T0 + 59_000, 11)]);
    // 60.5 s: bucket ended but grace (1 s) not over yet.
    expect(b.applyTrades([tr(T0 + 60_500, 20)]).closed).toEqual([]);
    const r = b.applyTrades([tr(T0 + 61_000, 21)]);
    expect(r.closed).toHaveLength(1);
    expect(r.closed[0]).toMatchObject({
      tf: '1m',
      t: T0,
      o: 10,
      h: 12,
      l: 9,
      c: 11,
      vol: 4,
      n: 4,
      closed: true,
      rev: 0,
      gap: 0,
    });
  });

  it('keeps a trade that arrives inside the grace in the previous bar', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    b.applyTrades([tr(T0 + 1000, 10), tr(T0 + 60_200, 11)]);
    const r = b.applyTrades([tr(T0 + 59_900, 5), tr(T0 + 61_500, 12)]);
    expect(r.closed[0]).toMatchObject({ t: T0, o: 10, c: 5, l: 5, n: 2 });
  });

  it('closes a quiet bar when the exchange clock advances without trades', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    b.applyTrades([tr(T0 + 5000, 10)]);
    expect(b.nextCloseAt()).toBe(T0 + 61_000);
    expect(b.advanceClock(T0 + 60_999).closed).toEqual([]);
    expect(b.advanceClock(T0 + 61_000).closed.map((x) => x.tf)).toEqual(['1m']);
  });

  it('marks gaps instead of inventing flat bars', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    b.applyTrades([tr(T0 + 1000, 10)]);
    const r = b.applyTrades([tr(T0 + 4 * 60_000 + 5000, 11), tr(T0 + 5 * 60_000 + 2000, 12)]);
    const oneMin = r.closed.filter((x) => x.tf === '1m');
    expect(oneMin.map((x) => [x.t - T0, x.gap])).toEqual([
      [0, 0],
      [4 * 60_000, 3],
    ]);
    // The 5m bucket [0,5m) closed with both trades.
    expect(r.closed.find((x) => x.tf === '5m')).toMatchObject({ t: T0, o: 10, c: 11, n: 2 });
  });

  it('rolls up higher timeframes from 1m bars', () => {
    const trades: Trade[] = [];
    for (let i = 0; i < 3 * 60; i++)
      trades.push(tr(T0 + i * 60_000 + 30_000, 100 + Math.sin(i) * 5, 1 + (i % 3)));
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    const closed = [...b.applyTrades(trades).closed, ...b.advanceClock(T0 + 1e9).closed];
    for (const tf of TIMEFRAMES) {
      expect(closed.filter((x) => x.tf === tf).map(strip)).toEqual(
        barsFromTrades('sim', 'X', tf, trades).map(strip),
      );
    }
  });

  it('revises a closed bar for a late trade, with every higher bar containing it', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    b.applyTrades([tr(T0 + 1000, 10), tr(T0 + 2 * 60_000, 11)]);
    const r = b.applyTrades([tr(T0 + 30_000, 50)]);
    expect(r.closed).toEqual([expect.objectContaining({ tf: '1m', t: T0, h: 50, rev: 1, n: 2 })]);
    expect(r.tooLate).toEqual([]);
    const rest = b.advanceClock(T0 + 1e9).closed;
    expect(rest.find((x) => x.tf === '5m')).toMatchObject({ h: 50, n: 3, rev: 0 });
  });

  it('refuses trades older than the revision window', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), { graceMs: 0, revisionWindow: 2 });
    for (let i = 0; i < 5; i++) b.applyTrades([tr(T0 + i * 60_000, 10)]);
    const late = tr(T0 + 1000, 99);
    expect(b.applyTrades([late]).tooLate).toEqual([late]);
  });

  it('drops a trade it has already applied', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    const t = tr(T0, 10);
    b.applyTrades([t]);
    expect(b.applyTrades([t]).duplicates).toBe(1);
    expect(b.formingBars()[0]).toMatchObject({ n: 1, closed: false });
  });

  it('shows forming bars for every timeframe of the newest bucket', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    b.applyTrades([tr(T0 + 1000, 10), tr(T0 + 70_000, 12), tr(T0 + 130_000, 8)]);
    const forming = b.formingBars();
    expect(forming.map((x) => x.tf)).toEqual([...TIMEFRAMES]);
    expect(forming.find((x) => x.tf === '1m')).toMatchObject({ t: T0 + 120_000, o: 8, closed: false });
    expect(forming.find((x) => x.tf === '1h')).toMatchObject({ t: T0, o: 10, h: 12, l: 8, c: 8, n: 3 });
  });

  // Property: however trades are batched, ticked and snapshotted, the latest revision of every
  // closed bar equals the bar computed directly from the full trade list.
  it('matches bars computed from the full trade list under any batching, ticks and restarts', () => {
    const arb = fc.record({
      steps: fc.array(
        fc.record({
          dt: fc.integer({ min: 0, max: 150_000 }),
          px: fc.double({ min: 1, max: 1000, noNaN: true }),
        }),
        { minLength: 1, maxLength: 300 },
      ),
      cuts: fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 50 }),
      restartAt: fc.integer({ min: 0, max: 60 }),
      tickLead: fc.integer({ min: -2000, max: 180_000 }),
      tickEvery: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(
      fc.property(arb, ({ steps, cuts, restartAt, tickLead, tickEvery }) => {
        let ts = T0;
        const trades = steps.map((s) => {
          ts += s.dt;
          return tr(ts, s.px, 1);
        });
        let builder = new BarBuilder(emptyState('sim', 'X'), opts);
        const closed: Bar[] = [];
        let i = 0;
        let batchNo = 0;
        while (i < trades.length) {
          const n = cuts[batchNo % cuts.length]!;
          const batch = trades.slice(i, i + n);
          i += n;
          closed.push(...builder.applyTrades(batch).closed);
          // A timer tick may run between batches, even ahead of the next trade (which is then
          // late and revises its bar).
          const next = trades[i];
          if (next && batchNo % tickEvery === 0)
            closed.push(...builder.advanceClock(next.ts + tickLead).closed);
          if (batchNo === restartAt) {
            const snapshot = JSON.parse(JSON.stringify(builder.state)) as BuilderState;
            builder = new BarBuilder(snapshot, opts);
          }
          batchNo++;
        }
        closed.push(...builder.advanceClock(ts + 10 * 86_400_000).closed);
        const got = latest(closed);
        for (const tf of TIMEFRAMES) {
          const want = barsFromTrades('sim', 'X', tf, trades);
          const gotTf = [...got.values()].filter((b) => b.tf === tf).sort((a, b) => a.t - b.t);
          expect(gotTf.map(strip)).toEqual(want.map(strip));
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('BarBuilder trade-id memory', () => {
  it('forgets only the oldest ids once full, also across a snapshot', () => {
    const opts3 = { graceMs: 0, revisionWindow: 10, idMemory: 3 };
    let b = new BarBuilder(emptyState('sim', 'X'), opts3);
    const ts = Date.UTC(2024, 0, 1);
    const t = (id: string) => ({ id, ts, px: 1, qty: 1 });
    b.applyTrades([t('a'), t('b'), t('c'), t('d')]);
    expect(b.applyTrades([t('b'), t('c'), t('d')]).duplicates).toBe(3);
    b = new BarBuilder(JSON.parse(JSON.stringify(b.state)) as BuilderState, opts3);
    expect(b.applyTrades([t('c')]).duplicates).toBe(1);
    // 'a' was evicted when 'd' arrived, so it counts again.
    expect(b.applyTrades([t('a')]).duplicates).toBe(0);
    expect(b.applyTrades([t('b')]).duplicates).toBe(0);
    expect(b.applyTrades([t('d')]).duplicates).toBe(1);
  });
});

describe('BarBuilder regression: late trade into a higher bucket that closed empty', () => {
  it('creates the 5m bar instead of refusing the trade (fast-check counterexample)', () => {
    const b = new BarBuilder(emptyState('sim', 'X'), opts);
    const closed: Bar[] = [];
    const t = [122_859, 272_844, 422_843].map((dt, i) => tr(T0 + dt, 1 + i));
    closed.push(...b.applyTrades([t[0]!]).closed, ...b.advanceClock(T0 + 451_001).closed);
    closed.push(...b.applyTrades([t[1]!]).closed, ...b.advanceClock(T0 + 601_000).closed);
    const r = b.applyTrades([t[2]!]);
    expect(r.tooLate).toEqual([]);
    closed.push(...r.closed, ...b.advanceClock(T0 + 1e9).closed);
    const got = [...latest(closed).values()].filter((x) => x.tf === '5m').sort((x, y) => x.t - y.t);
    expect(got.map(strip)).toEqual(barsFromTrades('sim', 'X', '5m', t).map(strip));
  });
});

describe('BarBuilder source bars and gap marks', () => {
  const T0 = Date.UTC(2024, 0, 2, 14, 30);
  const src = (i: number, px: number) => ({
    t: T0 + i * 60_000,
    o: px,
    h: px + 2,
    l: px - 1,
    c: px + 1,
    vol: 100 + i,
  });

  it('closes each source bar at once and rolls source bars up, marked as source bars', () => {
    const b = new BarBuilder(emptyState('yahoo', 'AAPL'), opts);
    const bars = Array.from({ length: 6 }, (_, i) => src(i, 100 + i));
    const out = b.applySourceBars(bars);
    const oneMinute = out.closed.filter((x) => x.tf === '1m');
    expect(oneMinute.map((x) => [x.t, x.o, x.h, x.l, x.c, x.vol, x.src])).toEqual(
      bars.map((x) => [x.t, x.o, x.h, x.l, x.c, x.vol, true]),
    );
    // 14:30-14:35 is one complete 5m bucket: o of the first, c of the last, extremes, summed volume.
    const five = out.closed.find((x) => x.tf === '5m')!;
    expect(five).toMatchObject({
      t: T0,
      o: 100,
      c: 105,
      h: 106,
      l: 99,
      vol: 100 + 101 + 102 + 103 + 104,
      src: true,
    });
    // Re-delivered source bars change nothing; one for a closed minute is refused as too late.
    const again = b.applySourceBars([bars[5]!]);
    expect(again.duplicates).toBe(1);
    expect(b.applySourceBars([src(-3, 90)]).tooLateBars).toHaveLength(1);
  });

  it('marks bars overlapping an unrepairable gap incomplete, revising closed ones once', () => {
    const b = new BarBuilder(emptyState('x', 'Y'), opts);
    const trades: Trade[] = [0, 1, 2, 3].map((i) => ({
      id: `t${i}`,
      ts: T0 + i * 60_000 + 5000,
      px: 10 + i,
      qty: 1,
    }));
    b.applyTrades(trades); // minutes 0..2 closed, minute 3 forming
    const out = b.markGap(T0 + 60_000 + 30_000, T0 + 3 * 60_000 + 10_000);
    expect(out.closed.filter((x) => x.tf === '1m').map((x) => [x.t - T0, x.rev, x.inc])).toEqual([
      [60_000, 1, true],
      [120_000, 1, true],
    ]);
    expect(out.formingChanged).toBe(true);
    expect(b.formingBars().find((x) => x.tf === '1m')).toMatchObject({ t: T0 + 180_000, inc: true });
    // The forming 5m bar that contains the window carries the mark too, and keeps it on close.
    const closed = b.advanceClock(T0 + 10 * 60_000).closed;
    expect(closed.find((x) => x.tf === '5m' && x.t === T0)).toMatchObject({ inc: true, rev: 0 });
    expect(closed.find((x) => x.tf === '1m' && x.t === T0 + 180_000)).toMatchObject({ inc: true });
    // Marking the same window again revises nothing.
    expect(b.markGap(T0 + 60_000 + 30_000, T0 + 3 * 60_000 + 10_000).closed).toEqual([]);
  });
});
