import { describe, expect, it } from 'vitest';
import { FEATURE_VERSION, type FeatureRow, FeatureSeries } from './features.ts';
import { type BarPoint, IndicatorSeries, type IndicatorValues } from './indicators.ts';
import { prng, randomWalkBars } from './synthetic.ts';

const BARS = randomWalkBars({ seed: 11, count: 2500, flatChance: 0.02 });
const IND = (() => {
  const s = new IndicatorSeries();
  return BARS.map((b) => s.update(b));
})();

function sampleStd(xs: number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Every feature computed directly from the whole history, one bar at a time. */
function reference(bars: readonly BarPoint[], ind: readonly IndicatorValues[], lookback = 120): FeatureRow[] {
  const lr = bars.map((b, i) => (i > 0 ? Math.log(b.c / bars[i - 1]!.c) : Number.NaN));
  return bars.map((b, i) => {
    const v = ind[i]!;
    const ret = (k: number) => (i >= k ? b.c / bars[i - k]!.c - 1 : null);
    const vol = (k: number) => (i >= k ? sampleStd(lr.slice(i - k + 1, i + 1)) : null);
    const sumVol = (from: number, to: number) => bars.slice(from, to + 1).reduce((a, x) => a + x.vol, 0);
    const prevHist = i > 0 ? ind[i - 1]!.macdHist : null;
    const hist = v.macdHist;
    const widths = ind.slice(Math.max(0, i - lookback + 1), i + 1).map((x) => x.bbWidth);
    const date = new Date(b.t);
    return {
      v: FEATURE_VERSION,
      t: b.t,
      ret1: ret(1),
      ret5: ret(5),
      ret10: ret(10),
      logRet1: i > 0 ? lr[i]! : null,
      vol5: vol(5),
      vol10: vol(10),
      vol20: vol(20),
      hlRange: (b.h - b.l) / b.c,
      volChange: i > 0 && bars[i - 1]!.vol > 0 ? b.vol / bars[i - 1]!.vol - 1 : null,
      volRatio: v.volSma20 ? b.vol / v.volSma20 : null,
      volMom5: i >= 9 && sumVol(i - 9, i - 5) > 0 ? sumVol(i - 4, i) / sumVol(i - 9, i - 5) - 1 : null,
      rsiZone: v.rsi === null ? null : v.rsi < 30 ? -1 : v.rsi > 70 ? 1 : 0,
      macdAbove: hist === null ? null : hist > 0 ? 1 : hist < 0 ? -1 : 0,
      macdCross:
        hist === null || prevHist === null
          ? null
          : prevHist <= 0 && hist > 0
            ? 1
            : prevHist >= 0 && hist < 0
              ? -1
              : 0,
      bbPb: v.bbPb,
      bbWidth: v.bbWidth,
      bbSqueeze:
        widths.length < lookback || widths.some((w) => w === null)
          ? null
          : v.bbWidth! <= Math.min(...(widths as number[]))
            ? 1
            : 0,
      distSma20: v.sma20 === null ? null : b.c / v.sma20 - 1,
      distSma50: v.sma50 === null ? null : b.c / v.sma50 - 1,
      distSma200: v.sma200 === null ? null : b.c / v.sma200 - 1,
      hour: date.getUTCHours(),
      weekday: date.getUTCDay(),
      marketOpen: null,
    } satisfies FeatureRow;
  });
}

function compareRows(got: readonly (FeatureRow | undefined)[], want: readonly FeatureRow[]): void {
  const problems: string[] = [];
  want.forEach((w, i) => {
    const g = got[i];
    if (!g) {
      problems.push(`bar ${i}: no row`);
      return;
    }
    for (const [k, b] of Object.entries(w)) {
      const a = g[k as keyof FeatureRow];
      const ok =
        typeof a === 'number' && typeof b === 'number'
          ? Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))
          : a === b;
      if (!ok) problems.push(`bar ${i} ${k}: got ${a}, want ${b}`);
    }
  });
  expect(problems.slice(0, 20)).toEqual([]);
}

const WANT = reference(BARS, IND);

describe('FeatureSeries', () => {
  it('equals a straightforward batch computation of every feature', () => {
    const f = new FeatureSeries();
    compareRows(
      BARS.map((b, i) => f.update(b, IND[i]!)),
      WANT,
    );
    // The interesting values do occur.
    expect(WANT.filter((r) => r.macdCross === 1).length).toBeGreaterThan(20);
    expect(WANT.filter((r) => r.macdCross === -1).length).toBeGreaterThan(20);
    expect(WANT.filter((r) => r.bbSqueeze === 1).length).toBeGreaterThan(5);
    expect(WANT.filter((r) => r.rsiZone === 1).length).toBeGreaterThan(5);
    expect(WANT.filter((r) => r.rsiZone === -1).length).toBeGreaterThan(5);
    expect(new Set(WANT.map((r) => r.weekday)).size).toBe(7);
  });

  it('is null where there is not enough history', () => {
    const row = new FeatureSeries().update(BARS[0]!, IND[0]!);
    expect(row).toMatchObject({ ret1: null, logRet1: null, vol5: null, volChange: null, macdCross: null });
    expect(row.v).toBe(FEATURE_VERSION);
  });

  it('preview equals the update that follows; a JSON round trip continues exactly', () => {
    let f = new FeatureSeries({ revisionDepth: 3, squeezeLookback: 50 });
    const rand = prng(12);
    const got: FeatureRow[] = [];
    const ind = new IndicatorSeries({ revisionDepth: 3 });
    BARS.forEach((b, i) => {
      const forming = { ...b, c: b.c * (1 + (rand() - 0.5) * 0.02), vol: b.vol * 2 };
      f.preview(forming, ind.preview(forming)!);
      const p = f.preview(b, ind.preview(b)!);
      const row = f.update(b, ind.update(b));
      expect(p).toEqual(row);
      got.push(row);
      if (i % 333 === 0) {
        const json = JSON.stringify(f.toState());
        f = FeatureSeries.fromState(JSON.parse(json), { squeezeLookback: 50 });
        expect(JSON.stringify(f.toState())).toBe(json);
      }
    });
    compareRows(got, reference(BARS, IND, 50));
  });

  it('rewinds on a revised or inserted bar; the caller replays the later ones', () => {
    const depth = 8;
    const ind = new IndicatorSeries({ revisionDepth: depth });
    const f = new FeatureSeries({ revisionDepth: depth });
    const rand = prng(13);
    const got: FeatureRow[] = [];
    const index = new Map(BARS.map((b, i) => [b.t, i]));
    const apply = (b: BarPoint) => {
      got[index.get(b.t)!] = f.update(b, ind.update(b));
      for (const r of ind.replayed) got[index.get(r.bar.t)!] = f.update(r.bar, r.values);
    };
    let held: number | null = null;
    BARS.forEach((b, i) => {
      if (held === null && rand() < 0.02) {
        held = i;
        return;
      }
      apply(b);
      if (held !== null && i - held >= 3) {
        apply(BARS[held]!);
        held = null;
      }
      if (i > depth && rand() < 0.05) {
        const j = i - Math.floor(rand() * (depth - 1));
        if (j === held) return;
        apply({ ...BARS[j]!, c: BARS[j]!.c * 1.02, h: BARS[j]!.h * 1.02, vol: 0 });
        apply(BARS[j]!);
      }
    });
    if (held !== null) apply(BARS[held]!);
    compareRows(got, WANT);
  });

  it('takes the market-open flag per call or from a calendar function', () => {
    const open = (t: number) => new Date(t).getUTCHours() >= 14;
    const f = new FeatureSeries({ isMarketOpen: open });
    const rows = BARS.slice(0, 300).map((b, i) => f.update(b, IND[i]!));
    expect(rows.map((r) => r.marketOpen)).toEqual(BARS.slice(0, 300).map((b) => open(b.t)));
    expect(new FeatureSeries().update(BARS[0]!, IND[0]!, true).marketOpen).toBe(true);
  });
});
