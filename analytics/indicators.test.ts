import { ADX, ATR, BollingerBands, EMA, MACD, RSI, SMA, Stochastic, VWAP } from 'technicalindicators';
import { describe, expect, it } from 'vitest';
import {
  type BarPoint,
  IndicatorSeries,
  type IndicatorSeriesOptions,
  type IndicatorValues,
  utcDayAnchor,
} from './indicators.ts';
import { RevisionTooOldError } from './series-state.ts';
import { prng, randomWalkBars } from './synthetic.ts';

type Field = Exclude<keyof IndicatorValues, 't'>;
type Expected = Record<Field, (number | null)[]>;

/** Equal to 1e-9 relative, or 1e-9 absolute below 1 (oscillators, MACD near its crossings). */
function near(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Places a library output (shorter than its input) at the end of an n-long array. */
function alignEnd<T>(out: T[], n: number): (T | null)[] {
  return [...new Array<null>(n - out.length).fill(null), ...out];
}

const num = (x: number | undefined | null): number | null =>
  x === undefined || x === null || Number.isNaN(x) ? null : x;

/** The technicalindicators batch results (and our documented deviations) per bar index. */
function expected(bars: readonly BarPoint[], anchor = utcDayAnchor): Expected {
  const n = bars.length;
  const close = bars.map((b) => b.c);
  const high = bars.map((b) => b.h);
  const low = bars.map((b) => b.l);
  const volume = bars.map((b) => b.vol);
  const e = {} as Expected;

  e.rsi = alignEnd(RSI.calculate({ period: 14, values: close }), n);
  const macd = alignEnd(
    MACD.calculate({
      values: close,
      fastPeriod: 12,
      slowPeriod: 26,
      signalPeriod: 9,
      SimpleMAOscillator: false,
      SimpleMASignal: false,
    }),
    n,
  );
  e.macd = macd.map((m) => num(m?.MACD));
  e.macdSignal = macd.map((m) => num(m?.signal));
  e.macdHist = macd.map((m) => num(m?.histogram));

  const bb = alignEnd(BollingerBands.calculate({ period: 20, stdDev: 2, values: close }), n);
  e.bbUpper = bb.map((x) => num(x?.upper));
  e.bbMiddle = bb.map((x) => num(x?.middle));
  e.bbLower = bb.map((x) => num(x?.lower));
  e.bbPb = bb.map((x) => num(x?.pb)); // NaN on flat bands → null (ours too)
  e.bbWidth = bb.map((x) => (x ? (x.upper - x.lower) / x.middle : null));

  for (const p of [20, 50, 100, 200] as const)
    e[`sma${p}`] = alignEnd(SMA.calculate({ period: p, values: close }), n);
  for (const p of [12, 26, 50] as const)
    e[`ema${p}`] = alignEnd(EMA.calculate({ period: p, values: close }), n);
  e.volSma20 = alignEnd(SMA.calculate({ period: 20, values: volume }), n);

  // VWAP: the library's is cumulative from its first input, so run it per anchor segment.
  e.vwap = [];
  for (let i = 0; i < n; ) {
    let j = i;
    while (j < n && anchor(bars[j]!.t) === anchor(bars[i]!.t)) j++;
    const seg = bars.slice(i, j);
    const out = VWAP.calculate({
      high: seg.map((b) => b.h),
      low: seg.map((b) => b.l),
      close: seg.map((b) => b.c),
      volume: seg.map((b) => b.vol),
    });
    e.vwap.push(...out.map(num)); // 0/0 before the first traded volume → NaN → null
    i = j;
  }

  // The library's stochastic is the fast one: k raw, d = SMA3(k). Our slow K is its d, our D
  // the SMA3 of that. Where the 14-bar range is 0 it sets k = 0; we say null (and so does every
  // average over it), so those indices are compared with the reference implementation instead.
  const st = alignEnd(Stochastic.calculate({ high, low, close, period: 14, signalPeriod: 3 }), n);
  const fastD = st.map((x) => num(x?.d));
  const slowD = alignEnd(SMA.calculate({ period: 3, values: fastD.filter((x) => x !== null) }), n);
  const flat = bars.map(
    (_, i) => i >= 13 && Math.max(...high.slice(i - 13, i + 1)) === Math.min(...low.slice(i - 13, i + 1)),
  );
  const flatNear = (i: number, w: number) => flat.slice(Math.max(0, i - w + 1), i + 1).some(Boolean);
  e.stochK = fastD.map((x, i) => (flatNear(i, 3) ? null : x));
  e.stochD = slowD.map((x, i) => (flatNear(i, 5) ? null : x));

  e.atr = alignEnd(ATR.calculate({ high, low, close, period: 14 }), n);
  const adx = alignEnd(ADX.calculate({ high, low, close, period: 14 }), n);
  e.adx = adx.map((x) => num(x?.adx));
  // +DI/−DI exist from bar 14, the library reports them only along with ADX (bar 27).
  const ref = referenceAdx(bars);
  e.pdi = ref.pdi.map((x, i) => (adx[i] ? num(adx[i]!.pdi) : x));
  e.mdi = ref.mdi.map((x, i) => (adx[i] ? num(adx[i]!.mdi) : x));
  return e;
}

/** Straightforward Wilder RSI (unrounded; the library rounds to 2 decimals). */
function referenceRsi(close: readonly number[]): (number | null)[] {
  const out: (number | null)[] = close.map(() => null);
  let g = 0;
  let l = 0;
  for (let i = 1; i < close.length; i++) {
    const d = close[i]! - close[i - 1]!;
    const gain = Math.max(d, 0);
    const loss = Math.max(-d, 0);
    if (i < 14) {
      g += gain;
      l += loss;
      continue;
    }
    if (i === 14) {
      g = (g + gain) / 14;
      l = (l + loss) / 14;
    } else {
      g = (g * 13 + gain) / 14;
      l = (l * 13 + loss) / 14;
    }
    out[i] = l === 0 ? (g === 0 ? null : 100) : g === 0 ? 0 : 100 - 100 / (1 + g / l);
  }
  return out;
}

/**
 * Straightforward ADX with our conventions: DI undefined while the smoothed TR is 0, and DX = 0
 * when +DI + −DI = 0. The library divides 0 by 0 there and its ADX stays NaN from then on.
 */
function referenceAdx(bars: readonly BarPoint[]) {
  const n = bars.length;
  const pdi: (number | null)[] = new Array(n).fill(null);
  const mdi: (number | null)[] = new Array(n).fill(null);
  const adx: (number | null)[] = new Array(n).fill(null);
  let sTr = 0;
  let sP = 0;
  let sM = 0;
  const dx: number[] = [];
  let a = 0;
  for (let i = 1; i < n; i++) {
    const b = bars[i]!;
    const p = bars[i - 1]!;
    const tr = Math.max(b.h - b.l, Math.abs(b.h - p.c), Math.abs(b.l - p.c));
    const up = b.h - p.h;
    const down = p.l - b.l;
    const pdm = up > down && up > 0 ? up : 0;
    const mdm = down > up && down > 0 ? down : 0;
    if (i <= 14) {
      sTr += tr;
      sP += pdm;
      sM += mdm;
    } else {
      sTr = sTr - sTr / 14 + tr;
      sP = sP - sP / 14 + pdm;
      sM = sM - sM / 14 + mdm;
    }
    if (i < 14 || sTr <= 0) continue;
    pdi[i] = (sP * 100) / sTr;
    mdi[i] = (sM * 100) / sTr;
    const sum = pdi[i]! + mdi[i]!;
    dx.push(sum > 0 ? (Math.abs(pdi[i]! - mdi[i]!) / sum) * 100 : 0);
    if (dx.length === 14) a = dx.reduce((x, y) => x + y, 0) / 14;
    else if (dx.length > 14) a = (dx.at(-1)! - a) / 14 + a;
    if (dx.length >= 14) adx[i] = a;
  }
  return { pdi, mdi, adx };
}

/** Straightforward slow stochastic (14, 3, 3) with null on a flat 14-bar range. */
function referenceStochastic(bars: readonly BarPoint[]) {
  const raw = bars.map((b, i) => {
    if (i < 13) return null;
    const w = bars.slice(i - 13, i + 1);
    const hh = Math.max(...w.map((x) => x.h));
    const ll = Math.min(...w.map((x) => x.l));
    return hh > ll ? ((b.c - ll) / (hh - ll)) * 100 : null;
  });
  const mean3 = (xs: (number | null)[], i: number) => {
    if (i < 2) return null;
    const w = xs.slice(i - 2, i + 1);
    return w.some((x) => x === null) ? null : (w[0]! + w[1]! + w[2]!) / 3;
  };
  const k = raw.map((_, i) => mean3(raw, i));
  const d = k.map((_, i) => mean3(k, i));
  return { k, d };
}

const FIELDS = Object.keys(expected(randomWalkBars({ count: 30 }))) as Field[];

function compare(
  got: readonly (IndicatorValues | undefined)[],
  bars: readonly BarPoint[],
  e: Expected,
): void {
  const rsi = referenceRsi(bars.map((b) => b.c));
  const stoch = referenceStochastic(bars);
  const adx = referenceAdx(bars);
  const problems: string[] = [];
  const check = (i: number, field: string, a: number | null, b: number | null) => {
    if (a === null || b === null ? a !== b : !near(a, b))
      problems.push(`bar ${i} ${field}: got ${a}, want ${b}`);
  };
  bars.forEach((bar, i) => {
    const v = got[i];
    if (!v) {
      problems.push(`bar ${i}: no values`);
      return;
    }
    if (v.t !== bar.t) problems.push(`bar ${i}: t ${v.t} != ${bar.t}`);
    for (const f of FIELDS) {
      if (f === 'rsi') {
        // The library rounds to 2 decimals and says 100 for a flat window; compare both ways.
        check(i, 'rsi(ref)', v.rsi, rsi[i]!);
        const lib = e.rsi[i]!;
        check(
          i,
          'rsi(lib)',
          v.rsi === null ? (lib === null ? null : 100) : Number.parseFloat(v.rsi.toFixed(2)),
          lib,
        );
      } else if (f === 'stochK' || f === 'stochD') {
        const want = e[f][i]!;
        check(i, `${f}(ref)`, v[f], (f === 'stochK' ? stoch.k : stoch.d)[i]!);
        if (want !== null) check(i, f, v[f], want);
      } else if (f === 'adx') {
        check(i, 'adx(ref)', v.adx, adx.adx[i]!);
        if (e.adx[i] !== null) check(i, 'adx', v.adx, e.adx[i]!);
      } else {
        check(i, f, v[f], e[f][i]!);
      }
    }
  });
  expect(problems.slice(0, 20)).toEqual([]);
}

function run(bars: readonly BarPoint[], opts?: IndicatorSeriesOptions): IndicatorValues[] {
  const s = new IndicatorSeries(opts);
  return bars.map((b) => s.update(b));
}

const BARS = randomWalkBars({ seed: 1, count: 3200 });
const FLATTISH = randomWalkBars({ seed: 2, count: 3000, flatChance: 0.05, sigma: 0.01, price: 0.05 });
const E_BARS = expected(BARS);
const E_FLAT = expected(FLATTISH);

describe('IndicatorSeries', () => {
  it('equals the technicalindicators batch results over 3,200 random-walk bars', () => {
    for (const f of FIELDS) expect(E_BARS[f].filter((x) => x !== null).length, f).toBeGreaterThan(2900);
    compare(run(BARS), BARS, E_BARS);
  });

  it('equals them on a series with many flat, zero-range and zero-volume stretches', () => {
    expect(FLATTISH.filter((b) => b.h === b.l).length).toBeGreaterThan(300);
    compare(run(FLATTISH), FLATTISH, E_FLAT);
  });

  it('reports null, never a number, until each indicator has enough bars', () => {
    const v = run(BARS.slice(0, 13)).at(-1)!;
    expect(Object.values(v).filter((x) => x !== null)).toEqual([v.t, v.ema12, v.vwap]);
    const first = run(BARS.slice(0, 1))[0]!;
    expect(Object.entries(first).filter(([, x]) => x !== null)).toEqual([
      ['t', BARS[0]!.t],
      ['vwap', first.vwap],
    ]);
  });

  it('preview equals the update that follows and leaves the state untouched', () => {
    const s = new IndicatorSeries();
    const rand = prng(3);
    const got: IndicatorValues[] = [];
    for (const b of BARS) {
      const forming = { ...b, c: b.c * (1 + (rand() - 0.5) * 0.01), h: b.h * 1.01, vol: b.vol * 3 };
      s.preview(forming);
      const p = s.preview(b);
      const v = s.update(b);
      expect(p).toEqual(v);
      got.push(v);
    }
    compare(got, BARS, E_BARS);
    expect(s.preview({ ...BARS.at(-1)! })).toBeNull(); // not after the last closed bar
  });

  it('continues exactly after a JSON round trip of its state at any point', () => {
    let s = new IndicatorSeries({ revisionDepth: 4 });
    const got: IndicatorValues[] = [];
    BARS.forEach((b, i) => {
      if (i % 397 === 0 || i === 1 || i === 13 || i === 27) {
        const json = JSON.stringify(s.toState());
        s = IndicatorSeries.fromState(JSON.parse(json));
        expect(JSON.stringify(s.toState())).toBe(json);
      }
      got.push(s.update(b));
    });
    compare(got, BARS, E_BARS);
  });

  it('replaces a revised last bar (same t, rev + 1), repeatedly', () => {
    const s = new IndicatorSeries();
    const rand = prng(4);
    const got: IndicatorValues[] = [];
    for (const b of FLATTISH) {
      if (rand() < 0.3) s.update({ ...b, h: b.h * 1.02, c: b.c * 1.01, vol: b.vol + 5 });
      if (rand() < 0.1) s.update({ ...b, l: b.l * 0.97, c: b.l * 0.97 });
      got.push(s.update(b));
      expect(s.replayed).toEqual([]);
    }
    compare(got, FLATTISH, E_FLAT);
  });

  it('revises and inserts older bars within the revision depth and replays the bars after them', () => {
    const depth = 11;
    const s = new IndicatorSeries({ revisionDepth: depth });
    const rand = prng(5);
    const got: IndicatorValues[] = [];
    const index = new Map(BARS.map((b, i) => [b.t, i]));
    const record = (v: IndicatorValues) => {
      got[index.get(v.t)!] = v;
      for (const r of s.replayed) got[index.get(r.bar.t)!] = r.values;
    };
    let held: number | null = null; // a bar left out for now (bucket closed empty), inserted later
    BARS.forEach((b, i) => {
      if (held === null && i > 5 && rand() < 0.03) {
        held = i;
        return;
      }
      record(s.update(b));
      if (held !== null && (i - held >= depth - 2 || rand() < 0.2)) {
        expect(s.classify(BARS[held]!.t)).toBe('insert');
        record(s.update(BARS[held]!));
        expect(s.replayed.length).toBe(i - held);
        held = null;
      }
      if (i > depth && rand() < 0.05) {
        const back = i - Math.floor(rand() * (depth - 1));
        if (back === held) return;
        const bad = BARS[back]!;
        expect(s.classify(bad.t)).toBe('revise');
        s.update({ ...bad, h: bad.h * 1.05, c: bad.c * 1.03, vol: bad.vol * 2 });
        record(s.update(bad));
      }
    });
    if (held !== null) record(s.update(BARS[held]!));
    compare(got, BARS, E_BARS);
  });

  it('refuses a revision older than its depth', () => {
    const s = new IndicatorSeries({ revisionDepth: 3 });
    s.warm(BARS.slice(0, 10));
    expect(s.classify(BARS[7]!.t)).toBe('revise');
    expect(s.classify(BARS[6]!.t)).toBe('too-old');
    expect(s.classify(BARS[6]!.t + 1)).toBe('insert'); // before bar 7: its checkpoint is kept
    expect(s.classify(BARS[6]!.t - 1)).toBe('too-old');
    expect(() => s.update(BARS[6]!)).toThrow(RevisionTooOldError);
    const early = new IndicatorSeries({ revisionDepth: 3 });
    early.warm(BARS.slice(1, 3));
    expect(early.classify(BARS[0]!.t)).toBe('insert'); // before everything, still within depth
  });

  it('warm() is the same as updating bar by bar', () => {
    const a = new IndicatorSeries();
    const last = a.warm(BARS.slice(0, 500));
    expect(last).toEqual(run(BARS.slice(0, 500)).at(-1));
    expect(a.count).toBe(500);
    expect(a.lastTime).toBe(BARS[499]!.t);
  });

  it('resets VWAP at every anchor change (a caller-supplied session anchor)', () => {
    const session = (t: number) => Math.floor((t - 13.5 * 3_600_000) / 86_400_000); // 13:30 UTC
    const got = run(BARS, { anchor: session });
    const e = expected(BARS, session);
    got.forEach((v, i) => {
      expect(v.vwap === null ? e.vwap[i] : near(v.vwap, e.vwap[i]!)).toBe(v.vwap === null ? null : true);
    });
  });

  it('documents the library quirks it deviates from on a series that starts flat', () => {
    const start = FLATTISH[0]!.t;
    const flatStart: BarPoint[] = [
      ...Array.from({ length: 30 }, (_, i) => ({
        t: start - (30 - i) * 300_000,
        o: 1,
        h: 1,
        l: 1,
        c: 1,
        vol: 1,
      })),
      ...FLATTISH.slice(0, 400).map((b) => ({
        ...b,
        o: b.o / FLATTISH[0]!.o,
        h: b.h / FLATTISH[0]!.o,
        l: b.l / FLATTISH[0]!.o,
        c: b.c / FLATTISH[0]!.o,
      })),
    ];
    const high = flatStart.map((b) => b.h);
    const low = flatStart.map((b) => b.l);
    const close = flatStart.map((b) => b.c);
    // technicalindicators: ADX is NaN forever after a flat start, RSI says 100, stochastic k 0.
    expect(ADX.calculate({ high, low, close, period: 14 }).every((x) => Number.isNaN(x.adx))).toBe(true);
    expect(RSI.calculate({ period: 14, values: close })[0]).toBe(100);
    expect(Stochastic.calculate({ high, low, close, period: 14, signalPeriod: 3 })[0]!.k).toBe(0);
    const got = run(flatStart);
    expect(got[20]!.rsi).toBeNull();
    expect(got[20]!.pdi).toBeNull();
    expect(got[20]!.stochK).toBeNull();
    const ref = referenceAdx(flatStart);
    const adxGot = got.map((v) => v.adx);
    expect(adxGot.filter((x) => x !== null).length).toBeGreaterThan(300);
    adxGot.forEach((x, i) => {
      expect(x === null ? ref.adx[i] : near(x, ref.adx[i]!)).toBe(x === null ? null : true);
    });
  });
});
