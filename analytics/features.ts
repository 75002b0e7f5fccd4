/**
 * ML features of one series (symbol + timeframe), one row per closed bar, O(1) per bar apart
 * from fixed windows of at most 20 values, with plain-number state that revises like
 * IndicatorSeries (see series-state.ts).
 *
 * Definitions (bar i, close c, volume v, open time t; null wherever an input is missing):
 * - ret1/ret5/ret10: simple return c[i] / c[i-k] − 1.
 * - logRet1: ln(c[i] / c[i-1]).
 * - vol5/vol10/vol20: sample standard deviation (n − 1) of the last k one-bar log returns.
 * - hlRange: (h − l) / c.
 * - volChange: v[i] / v[i-1] − 1 (null when v[i-1] = 0).
 * - volRatio: v / volume SMA20 (the SMA includes this bar; null when it is 0).
 * - volMom5: (sum of the last 5 volumes) / (sum of the 5 before) − 1 (null when that is 0).
 * - rsiZone: −1 when RSI < 30, +1 when RSI > 70, else 0.
 * - macdAbove: sign(MACD − signal): +1 above, −1 below, 0 equal.
 * - macdCross: +1 when MACD − signal went from ≤ 0 (previous bar) to > 0, −1 from ≥ 0 to < 0,
 *   else 0; null unless both bars have a signal.
 * - bbPb, bbWidth: Bollinger %b and bandwidth (upper − lower) / middle.
 * - bbSqueeze: 1 when this bar's bandwidth is the lowest of the last `squeezeLookback` bars
 *   (default 120, this one included; Bollinger's "bandwidth at its N-bar low"), else 0.
 * - distSma20/50/200: c / SMA − 1.
 * - hour (0–23) and weekday (0 = Sunday) of the bar's open time in UTC.
 * - marketOpen: supplied by the caller (per call, or an `isMarketOpen(t)` option), else null.
 */
import { BadArgumentError } from '../core/errors.ts';
import type { BarPoint, IndicatorValues } from './indicators.ts';
import { layout, RevisionTooOldError, SeriesState, type SeriesStateJson } from './series-state.ts';

/** Bump when a definition or the set of features changes; stored with every row. */
export const FEATURE_VERSION = 1 as const;

export interface FeatureRow {
  v: typeof FEATURE_VERSION;
  t: number;
  ret1: number | null;
  ret5: number | null;
  ret10: number | null;
  logRet1: number | null;
  vol5: number | null;
  vol10: number | null;
  vol20: number | null;
  hlRange: number;
  volChange: number | null;
  volRatio: number | null;
  volMom5: number | null;
  rsiZone: -1 | 0 | 1 | null;
  macdAbove: -1 | 0 | 1 | null;
  macdCross: -1 | 0 | 1 | null;
  bbPb: number | null;
  bbWidth: number | null;
  bbSqueeze: 0 | 1 | null;
  distSma20: number | null;
  distSma50: number | null;
  distSma200: number | null;
  hour: number;
  weekday: number;
  marketOpen: boolean | null;
}

export interface FeatureSeriesOptions {
  /** How many closed bars back a revision can reach (default 16; match the IndicatorSeries). */
  revisionDepth?: number;
  /** Bars whose lowest bandwidth defines a squeeze (default 120). */
  squeezeLookback?: number;
  /** Market-open flag for a bar open time, when the caller does not pass one per bar. */
  isMarketOpen?: (t: number) => boolean;
}

const F = layout(['n', 'lastT', 'hist', 'prevHist', 'bwMin', 'bwCount']);
const SIZE = Object.keys(F).length;
const RING_C = 0;
const RING_LR = 1;
const RING_V = 2;
const RING_BW = 3;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

const ratio = (a: number, b: number): number | null =>
  b !== 0 && !Number.isNaN(b) && !Number.isNaN(a) ? a / b - 1 : null;
const sign = (x: number): -1 | 0 | 1 => (x > 0 ? 1 : x < 0 ? -1 : 0);
/** The value `k` bars before bar n, NaN before the first bar. */
const back = (ring: Float64Array, cap: number, n: number, k: number): number =>
  n >= k ? ring[(n - k) % cap]! : Number.NaN;

export class FeatureSeries {
  private readonly st: SeriesState;
  private readonly lookback: number;
  private readonly isMarketOpen: ((t: number) => boolean) | undefined;

  constructor(opts: FeatureSeriesOptions = {}) {
    this.lookback = opts.squeezeLookback ?? 120;
    if (!Number.isInteger(this.lookback) || this.lookback < 2)
      throw new BadArgumentError('squeezeLookback', 'must be an integer >= 2');
    this.st = new SeriesState(
      `features:v${FEATURE_VERSION}:${SIZE}:${this.lookback}`,
      SIZE,
      opts.revisionDepth ?? 16,
      [10, 20, 10, this.lookback],
    );
    this.st.s[F.bwCount] = 0;
    this.isMarketOpen = opts.isMarketOpen;
  }

  static fromState(
    state: SeriesStateJson,
    opts: Omit<FeatureSeriesOptions, 'revisionDepth'> = {},
  ): FeatureSeries {
    const series = new FeatureSeries({ ...opts, revisionDepth: state?.depth });
    series.st.load(state);
    return series;
  }

  toState(): SeriesStateJson {
    return this.st.toJSON();
  }

  get count(): number {
    return this.st.n;
  }

  /**
   * The feature row of a closed bar. A bar with the open time of an earlier bar (or between
   * earlier bars) rewinds the series to before it: the bars after it are dropped, and the caller
   * feeds them again (with their recomputed indicator values, `IndicatorSeries.replayed`).
   */
  update(bar: BarPoint, ind: IndicatorValues, marketOpen?: boolean): FeatureRow {
    const st = this.st;
    const seq = st.locate(bar.t);
    if (seq < 0) throw new RevisionTooOldError(bar.t, st.depth);
    if (seq < st.n) st.rewindTo(seq);
    st.checkpoint();
    return this.apply(bar, ind, marketOpen);
  }

  /** The row as if the forming bar closed now (with `IndicatorSeries.preview` values). */
  preview(bar: BarPoint, ind: IndicatorValues, marketOpen?: boolean): FeatureRow | null {
    const st = this.st;
    if (st.n > 0 && bar.t <= st.lastT) return null;
    st.beginPreview();
    try {
      return this.apply(bar, ind, marketOpen);
    } finally {
      st.endPreview();
    }
  }

  private apply(bar: BarPoint, ind: IndicatorValues, marketOpen: boolean | undefined): FeatureRow {
    const st = this.st;
    const s = st.s;
    const rings = st.rings;
    const caps = st.caps;
    const C = rings[RING_C]!;
    const LR = rings[RING_LR]!;
    const V = rings[RING_V]!;
    const BW = rings[RING_BW]!;
    const cc = caps[RING_C]!;
    const clr = caps[RING_LR]!;
    const cv = caps[RING_V]!;
    const cbw = caps[RING_BW]!;
    const n = s[F.n]! | 0; // an int: `%` on doubles is a slow fmod
    const count = n + 1;
    const { t, h, l, c, vol } = bar;

    const prevC = back(C, cc, n, 1);
    const lr = Math.log(c / prevC); // NaN for the first bar
    C[n % cc] = c;
    LR[n % clr] = lr;
    V[n % cv] = vol;
    st.times[n % st.times.length] = t;
    s[F.n] = count;
    s[F.lastT] = t;

    // Volatility: sample std of the last 5/10/20 log returns, two passes over ≤ 20 values.
    let vol5: number | null = null;
    let vol10: number | null = null;
    let vol20: number | null = null;
    const ilr = n % clr;
    if (count > 5) {
      const k = count > 20 ? 20 : count > 10 ? 10 : 5;
      let s5 = 0;
      let s10 = 0;
      let s20 = 0;
      let j = ilr;
      for (let i = 0; i < k; i++) {
        const x = LR[j]!;
        if (i < 5) s5 += x;
        if (i < 10) s10 += x;
        s20 += x;
        if (--j < 0) j = clr - 1;
      }
      const m5 = s5 / 5;
      const m10 = s10 / 10;
      const m20 = s20 / 20;
      let q5 = 0;
      let q10 = 0;
      let q20 = 0;
      j = ilr;
      for (let i = 0; i < k; i++) {
        const x = LR[j]!;
        if (i < 5) q5 += (x - m5) * (x - m5);
        if (i < 10) q10 += (x - m10) * (x - m10);
        q20 += (x - m20) * (x - m20);
        if (--j < 0) j = clr - 1;
      }
      vol5 = Math.sqrt(q5 / 4);
      if (count > 10) vol10 = Math.sqrt(q10 / 9);
      if (count > 20) vol20 = Math.sqrt(q20 / 19);
    }

    let volMom5: number | null = null;
    if (count >= 10) {
      let recent = 0;
      let before = 0;
      let j = n % cv;
      for (let i = 0; i < 10; i++) {
        if (i < 5) recent += V[j]!;
        else before += V[j]!;
        if (--j < 0) j = cv - 1;
      }
      volMom5 = before > 0 ? recent / before - 1 : null;
    }

    // MACD state of the previous bar, for crossings.
    const hist = ind.macdHist ?? Number.NaN;
    s[F.prevHist] = s[F.hist]!;
    s[F.hist] = hist;
    const prevHist = s[F.prevHist]!;
    let macdCross: -1 | 0 | 1 | null = null;
    if (!Number.isNaN(hist) && !Number.isNaN(prevHist))
      macdCross = prevHist <= 0 && hist > 0 ? 1 : prevHist >= 0 && hist < 0 ? -1 : 0;

    // Squeeze: running minimum of the bandwidth over the lookback, rescanned only when the
    // minimum leaves the window.
    const N = this.lookback;
    const bw = ind.bbWidth ?? Number.NaN;
    BW[n % cbw] = bw;
    if (!Number.isNaN(bw)) s[F.bwCount] = s[F.bwCount]! + 1;
    const out = n >= N ? BW[(n - N) % cbw]! : Number.NaN;
    if (out === s[F.bwMin]) {
      let m = Number.NaN;
      for (let i = n - N + 1; i <= n; i++) {
        const x = BW[i % cbw]!;
        if (!Number.isNaN(x) && !(x >= m)) m = x;
      }
      s[F.bwMin] = m;
    } else if (!Number.isNaN(bw) && !(bw >= s[F.bwMin]!)) {
      s[F.bwMin] = bw;
    }
    const bbSqueeze = !Number.isNaN(bw) && s[F.bwCount]! >= N ? (bw <= s[F.bwMin]! ? 1 : 0) : null;

    const day = Math.floor(t / DAY_MS);
    const rsi = ind.rsi;
    return {
      v: 1,
      t,
      ret1: ratio(c, prevC),
      ret5: ratio(c, back(C, cc, n, 5)),
      ret10: ratio(c, back(C, cc, n, 10)),
      logRet1: !Number.isNaN(lr) ? lr : null,
      vol5,
      vol10,
      vol20,
      hlRange: (h - l) / c,
      volChange: ratio(vol, back(V, cv, n, 1)),
      volRatio: ind.volSma20 ? vol / ind.volSma20 : null,
      volMom5,
      rsiZone: rsi === null ? null : rsi < 30 ? -1 : rsi > 70 ? 1 : 0,
      macdAbove: !Number.isNaN(hist) ? sign(hist) : null,
      macdCross,
      bbPb: ind.bbPb,
      bbWidth: ind.bbWidth,
      bbSqueeze,
      distSma20: ind.sma20 === null ? null : c / ind.sma20 - 1,
      distSma50: ind.sma50 === null ? null : c / ind.sma50 - 1,
      distSma200: ind.sma200 === null ? null : c / ind.sma200 - 1,
      hour: Math.floor((t - day * DAY_MS) / HOUR_MS),
      weekday: (((day + 4) % 7) + 7) % 7, // 1970-01-01 was a Thursday
      marketOpen: marketOpen ?? this.isMarketOpen?.(t) ?? null,
    };
  }
}
