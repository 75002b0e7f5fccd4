/**
 * Incremental technical indicators for one series (one symbol, one timeframe), O(1) per closed
 * bar apart from two short fixed windows (the 20-value Bollinger deviation pass, and the 14-bar
 * high/low rescan when the extreme leaves the window), with plain-number state.
 *
 * Every value equals technicalindicators 3.1.0's batch `.calculate` on the same closed bars
 * (`indicators.test.ts` proves it), using the same operation order where that matters: running
 * sums `sum - oldest + newest` for SMAs, SMA-seeded EMAs (MACD with SimpleMAOscillator and
 * SimpleMASignal false), Wilder smoothing for RSI/ATR/ADX, population standard deviation for
 * Bollinger Bands, typical-price VWAP. Where that library returns a number for an undefined
 * quantity we return null instead (see `IndicatorValues`); we do not round RSI to 2 decimals.
 *
 * We do not use the library's streaming `nextValue`: its state lives in generator closures,
 * which cannot be snapshotted to JSON, and it is slow.
 */
import { layout, RevisionTooOldError, SeriesState, type SeriesStateJson } from './series-state.ts';

/** The bar fields the analytics read; a protocol `Bar` fits. */
export interface BarPoint {
  /** Open time, epoch ms UTC. */
  t: number;
  o: number;
  h: number;
  l: number;
  c: number;
  vol: number;
}

/** Indicator values as of one closed (or previewed) bar; null until there is enough history. */
export interface IndicatorValues {
  t: number;
  /** RSI(14), Wilder. Null while both average gain and loss are 0 (that library: 100). */
  rsi: number | null;
  /** MACD(12, 26, 9): EMA12 − EMA26, its EMA9 signal, and their difference. */
  macd: number | null;
  macdSignal: number | null;
  macdHist: number | null;
  /** Bollinger Bands(20, 2), population standard deviation. */
  bbUpper: number | null;
  bbMiddle: number | null;
  bbLower: number | null;
  /** Bandwidth (upper − lower) / middle. */
  bbWidth: number | null;
  /** %b = (close − lower) / (upper − lower); null when the bands are flat (that library: NaN). */
  bbPb: number | null;
  sma20: number | null;
  sma50: number | null;
  sma100: number | null;
  sma200: number | null;
  ema12: number | null;
  ema26: number | null;
  ema50: number | null;
  /** Volume-weighted typical price since the anchor (see `IndicatorSeriesOptions.anchor`). */
  vwap: number | null;
  /**
   * Slow stochastic (14, 3, 3): K = SMA3 of the raw %K, D = SMA3 of K. Raw %K is null when the
   * 14-bar high equals the low (that library: 0), and so is any average containing it.
   */
  stochK: number | null;
  stochD: number | null;
  /** ATR(14): Wilder average of the true range (the first bar has none). */
  atr: number | null;
  /** ADX(14) with +DI/−DI. DI are null while the smoothed true range is 0 (no range at all). */
  adx: number | null;
  pdi: number | null;
  mdi: number | null;
  volSma20: number | null;
}

export interface IndicatorSeriesOptions {
  /** How many closed bars back a revision or insertion can reach (default 16). */
  revisionDepth?: number;
  /**
   * VWAP anchor of a bar open time: VWAP restarts whenever the returned number changes.
   * Default `utcDayAnchor` (crypto); pass a session-start function for equities.
   */
  anchor?: (t: number) => number;
}

export interface ReplayedBar {
  bar: BarPoint;
  values: IndicatorValues;
}

const DAY_MS = 86_400_000;
/** VWAP anchor for 24/7 markets: the UTC day of the bar. */
export const utcDayAnchor = (t: number): number => Math.floor(t / DAY_MS);

export const INDICATOR_PERIODS = Object.freeze({
  rsi: 14,
  macd: [12, 26, 9] as const,
  bollinger: [20, 2] as const,
  sma: [20, 50, 100, 200] as const,
  ema: [12, 26, 50] as const,
  stochastic: [14, 3, 3] as const,
  atr: 14,
  adx: 14,
  volumeSma: 20,
});

const F = layout([
  'n',
  'lastT',
  'sum20',
  'sum50',
  'sum100',
  'sum200',
  'volSum20',
  'ema12',
  'ema26',
  'ema50',
  'macd',
  'sigSum',
  'signal',
  'gainSum',
  'lossSum',
  'avgGain',
  'avgLoss',
  'rsi',
  'atr',
  'sTr',
  'sPdm',
  'sMdm',
  'pdi',
  'mdi',
  'dxCount',
  'dxSum',
  'adx',
  'hh',
  'll',
  'k0',
  'k1',
  'k2',
  'sk0',
  'sk1',
  'sk2',
  'sd',
  'anchor',
  'cumPv',
  'cumV',
]);
const SIZE = Object.keys(F).length;
/** Zero-started accumulators (everything else starts NaN = undefined). */
const ZEROS = [F.sum20, F.sum50, F.sum100, F.sum200, F.volSum20, F.sigSum, F.gainSum, F.lossSum];
const ZEROS_ADX = [F.sTr, F.sPdm, F.sMdm, F.dxCount, F.dxSum, F.cumPv, F.cumV];

// Ring windows: close (SMA200), high, low (stochastic 14), volume (SMA20), open (replay only).
const RING_C = 0;
const RING_H = 1;
const RING_L = 2;
const RING_V = 3;
const RING_O = 4;
const WINDOWS = [200, 14, 14, 20, 0];
const KIND = `indicators:${SIZE}:${WINDOWS.join(',')}`;

const K12 = 2 / 13;
const K26 = 2 / 27;
const K50 = 2 / 51;
const K9 = 2 / 10;
const W14 = 1 / 14;

const nul = (x: number): number | null => (!Number.isNaN(x) ? x : null);
const NO_REPLAY: readonly ReplayedBar[] = Object.freeze([]);

/** Ring slot of the value `back` bars before the one in slot `at` (no `%`: it is a division). */
function prior(at: number, back: number, cap: number): number {
  const j = at - back;
  return j < 0 ? j + cap : j;
}

/** The running window sum technicalindicators' SMA keeps: add until full, then `sum - out + in`. */
function roll(
  sum: number,
  ring: Float64Array,
  cap: number,
  at: number,
  n: number,
  window: number,
  x: number,
): number {
  return n >= window ? sum - ring[prior(at, window, cap)]! + x : sum + x;
}

/** Mean of the first `p` values (sequence 0 … p − 1, still in the ring when this runs). */
function seedMean(ring: Float64Array, p: number): number {
  let sum = 0;
  for (let i = 0; i < p; i++) sum = sum + ring[i]!;
  return sum / p;
}

/** Highest (sign 1) or lowest (sign −1) of the `len` values ending at slot `at`. */
function extreme(ring: Float64Array, cap: number, at: number, len: number, sign: 1 | -1): number {
  let j = prior(at, len - 1, cap);
  let m = ring[j]!;
  for (let i = 1; i < len; i++) {
    if (++j === cap) j = 0;
    const x = ring[j]!;
    if (sign > 0 ? x > m : x < m) m = x;
  }
  return m;
}

export class IndicatorSeries {
  /** Bars recomputed after the last `update` revised or inserted an older bar, oldest first. */
  replayed: readonly ReplayedBar[] = NO_REPLAY;
  private readonly st: SeriesState;
  private readonly anchor: (t: number) => number;
  private readonly C: Float64Array;
  private readonly H: Float64Array;
  private readonly L: Float64Array;
  private readonly V: Float64Array;
  private readonly O: Float64Array;
  private readonly cc: number;
  private readonly chl: number;
  private readonly cv: number;
  private readonly co: number;

  constructor(opts: IndicatorSeriesOptions = {}) {
    this.st = new SeriesState(KIND, SIZE, opts.revisionDepth ?? 16, WINDOWS);
    for (const i of [...ZEROS, ...ZEROS_ADX]) this.st.s[i] = 0;
    this.anchor = opts.anchor ?? utcDayAnchor;
    const r = this.st.rings;
    [this.C, this.H, this.L, this.V, this.O] = [r[RING_C]!, r[RING_H]!, r[RING_L]!, r[RING_V]!, r[RING_O]!];
    const caps = this.st.caps;
    [this.cc, this.chl, this.cv, this.co] = [caps[RING_C]!, caps[RING_H]!, caps[RING_V]!, caps[RING_O]!];
  }

  static fromState(
    state: SeriesStateJson,
    opts: Omit<IndicatorSeriesOptions, 'revisionDepth'> = {},
  ): IndicatorSeries {
    const series = new IndicatorSeries({ ...opts, revisionDepth: state?.depth });
    series.st.load(state);
    return series;
  }

  toState(): SeriesStateJson {
    return this.st.toJSON();
  }

  /** Closed bars applied so far. */
  get count(): number {
    return this.st.n;
  }

  /** Open time of the newest closed bar, or null. */
  get lastTime(): number | null {
    return this.st.n > 0 ? this.st.lastT : null;
  }

  /** What `update(bar)` would do with a bar of this open time. */
  classify(t: number): 'append' | 'revise' | 'insert' | 'too-old' {
    const seq = this.st.locate(t);
    if (seq < 0) return 'too-old';
    if (seq === this.st.n) return 'append';
    return this.st.timeAt(seq) === t ? 'revise' : 'insert';
  }

  /**
   * Applies a closed bar and returns the values as of it. A bar with the open time of an earlier
   * bar replaces it (revision); one between earlier bars is inserted (a bucket that closed empty
   * got a late trade). Either way the later bars are recomputed and listed in `replayed`.
   * Throws RevisionTooOldError beyond the revision depth.
   */
  update(bar: BarPoint): IndicatorValues {
    const st = this.st;
    const seq = st.locate(bar.t);
    if (seq < 0) throw new RevisionTooOldError(bar.t, st.depth);
    if (seq === st.n) {
      this.replayed = NO_REPLAY;
      st.checkpoint();
      this.apply(bar.t, bar.o, bar.h, bar.l, bar.c, bar.vol);
      return this.read();
    }
    const later: BarPoint[] = [];
    for (let i = st.timeAt(seq) === bar.t ? seq + 1 : seq; i < st.n; i++) later.push(this.barAt(i));
    st.rewindTo(seq);
    st.checkpoint();
    this.apply(bar.t, bar.o, bar.h, bar.l, bar.c, bar.vol);
    const out = this.read();
    const replayed: ReplayedBar[] = [];
    for (const b of later) {
      st.checkpoint();
      this.apply(b.t, b.o, b.h, b.l, b.c, b.vol);
      replayed.push({ bar: b, values: this.read() });
    }
    this.replayed = replayed;
    return out;
  }

  /** Values as if the forming `bar` closed now; the state is left exactly as it was. */
  preview(bar: BarPoint): IndicatorValues | null {
    const st = this.st;
    if (st.n > 0 && bar.t <= st.lastT) return null;
    st.beginPreview();
    try {
      this.apply(bar.t, bar.o, bar.h, bar.l, bar.c, bar.vol);
      return this.read();
    } finally {
      st.endPreview();
    }
  }

  /** Applies historical closed bars (ascending); returns the values of the last one. */
  warm(bars: readonly BarPoint[]): IndicatorValues | null {
    let last: IndicatorValues | null = null;
    for (const b of bars) last = this.update(b);
    return last;
  }

  private barAt(seq: number): BarPoint {
    return {
      t: this.st.timeAt(seq),
      o: this.O[seq % this.co]!,
      h: this.H[seq % this.chl]!,
      l: this.L[seq % this.chl]!,
      c: this.C[seq % this.cc]!,
      vol: this.V[seq % this.cv]!,
    };
  }

  private apply(t: number, o: number, h: number, l: number, c: number, vol: number): void {
    const s = this.st.s;
    const { C, H, L, V, cc, chl, cv } = this;
    const n = s[F.n]! | 0; // an int: `%` on doubles is a slow fmod
    const count = n + 1;
    const ic = n % cc;
    const ihl = n % chl;
    const iv = n % cv;
    const prevC = n > 0 ? C[prior(ic, 1, cc)]! : Number.NaN;
    const prevH = n > 0 ? H[prior(ihl, 1, chl)]! : Number.NaN;
    const prevL = n > 0 ? L[prior(ihl, 1, chl)]! : Number.NaN;
    C[ic] = c;
    H[ihl] = h;
    L[ihl] = l;
    V[iv] = vol;
    this.O[n % this.co] = o;
    this.st.times[n % this.st.times.length] = t;
    s[F.n] = count;
    s[F.lastT] = t;

    // Simple moving averages and the volume SMA.
    s[F.sum20] = roll(s[F.sum20]!, C, cc, ic, n, 20, c);
    s[F.sum50] = roll(s[F.sum50]!, C, cc, ic, n, 50, c);
    s[F.sum100] = roll(s[F.sum100]!, C, cc, ic, n, 100, c);
    s[F.sum200] = roll(s[F.sum200]!, C, cc, ic, n, 200, c);
    s[F.volSum20] = roll(s[F.volSum20]!, V, cv, iv, n, 20, vol);

    // EMAs, seeded by the SMA of their first `period` closes.
    if (count === 12) s[F.ema12] = seedMean(C, 12);
    else if (count > 12) s[F.ema12] = (c - s[F.ema12]!) * K12 + s[F.ema12]!;
    if (count === 26) s[F.ema26] = seedMean(C, 26);
    else if (count > 26) s[F.ema26] = (c - s[F.ema26]!) * K26 + s[F.ema26]!;
    if (count === 50) s[F.ema50] = seedMean(C, 50);
    else if (count > 50) s[F.ema50] = (c - s[F.ema50]!) * K50 + s[F.ema50]!;

    // MACD: the signal is an EMA9 of MACD seeded by the SMA of its first 9 values.
    if (count >= 26) {
      const macd = s[F.ema12]! - s[F.ema26]!;
      s[F.macd] = macd;
      const m = count - 25;
      if (m <= 9) s[F.sigSum] = s[F.sigSum]! + macd;
      if (m === 9) s[F.signal] = s[F.sigSum]! / 9;
      else if (m > 9) s[F.signal] = (macd - s[F.signal]!) * K9 + s[F.signal]!;
    }

    if (count >= 2) {
      // RSI: Wilder averages of gains and losses, seeded by their plain mean over 14 changes.
      const up = c - prevC;
      const gain = Math.max(up, 0);
      const down = prevC - c;
      const loss = Math.max(down, 0);
      const m = count - 1;
      if (m < 14) {
        s[F.gainSum] = s[F.gainSum]! + gain;
        s[F.lossSum] = s[F.lossSum]! + loss;
      } else if (m === 14) {
        s[F.avgGain] = (s[F.gainSum]! + gain) / 14;
        s[F.avgLoss] = (s[F.lossSum]! + loss) / 14;
      } else {
        s[F.avgGain] = (s[F.avgGain]! * 13 + gain) / 14;
        s[F.avgLoss] = (s[F.avgLoss]! * 13 + loss) / 14;
      }
      if (m >= 14) {
        const g = s[F.avgGain]!;
        const ls = s[F.avgLoss]!;
        s[F.rsi] = ls === 0 ? (g === 0 ? Number.NaN : 100) : g === 0 ? 0 : 100 - 100 / (1 + g / ls);
      }

      // True range, directional movement; ATR = Wilder average of TR; ADX from Wilder sums.
      const tr = Math.max(h - l, Math.abs(h - prevC), Math.abs(l - prevC));
      const upMove = h - prevH;
      const downMove = prevL - l;
      const pdm = upMove > downMove && upMove > 0 ? upMove : 0;
      const mdm = downMove > upMove && downMove > 0 ? downMove : 0;
      if (m <= 14) {
        s[F.sTr] = s[F.sTr]! + tr;
        s[F.sPdm] = s[F.sPdm]! + pdm;
        s[F.sMdm] = s[F.sMdm]! + mdm;
        if (m === 14) s[F.atr] = s[F.sTr]! / 14;
      } else {
        s[F.atr] = (tr - s[F.atr]!) * W14 + s[F.atr]!;
        s[F.sTr] = s[F.sTr]! - s[F.sTr]! / 14 + tr;
        s[F.sPdm] = s[F.sPdm]! - s[F.sPdm]! / 14 + pdm;
        s[F.sMdm] = s[F.sMdm]! - s[F.sMdm]! / 14 + mdm;
      }
      if (m >= 14) {
        const str = s[F.sTr]!;
        if (str > 0) {
          const pdi = (s[F.sPdm]! * 100) / str;
          const mdi = (s[F.sMdm]! * 100) / str;
          s[F.pdi] = pdi;
          s[F.mdi] = mdi;
          const diSum = pdi + mdi;
          // No directional movement at all: no trend, DX 0 (that library: NaN, which then
          // poisons its ADX for good).
          const dx = diSum > 0 ? (Math.abs(pdi - mdi) / diSum) * 100 : 0;
          const k = s[F.dxCount]! + 1;
          s[F.dxCount] = k;
          if (k <= 14) s[F.dxSum] = s[F.dxSum]! + dx;
          if (k === 14) s[F.adx] = s[F.dxSum]! / 14;
          else if (k > 14) s[F.adx] = (dx - s[F.adx]!) * W14 + s[F.adx]!;
        } else {
          // Zero range over the whole smoothing window: DI undefined; ADX keeps its value.
          s[F.pdi] = Number.NaN;
          s[F.mdi] = Number.NaN;
        }
      }
    }

    // Stochastic: highest high / lowest low of 14 bars, rescanned only when the extreme leaves.
    if (count <= 14) {
      s[F.hh] = count === 1 ? h : Math.max(s[F.hh]!, h);
      s[F.ll] = count === 1 ? l : Math.min(s[F.ll]!, l);
    } else {
      const out = prior(ihl, 14, chl);
      if (H[out] === s[F.hh]) s[F.hh] = extreme(H, chl, ihl, 14, 1);
      else if (h > s[F.hh]!) s[F.hh] = h;
      if (L[out] === s[F.ll]) s[F.ll] = extreme(L, chl, ihl, 14, -1);
      else if (l < s[F.ll]!) s[F.ll] = l;
    }
    let k = Number.NaN;
    if (count >= 14) {
      const range = s[F.hh]! - s[F.ll]!;
      if (range > 0) k = ((c - s[F.ll]!) / range) * 100;
    }
    s[F.k2] = s[F.k1]!;
    s[F.k1] = s[F.k0]!;
    s[F.k0] = k;
    s[F.sk2] = s[F.sk1]!;
    s[F.sk1] = s[F.sk0]!;
    s[F.sk0] = (s[F.k0]! + s[F.k1]! + s[F.k2]!) / 3; // NaN until three raw values exist

    // Bollinger: population standard deviation around the SMA20, two-pass over the window
    // (exact, no drift; 20 multiply-adds).
    if (count >= 20) {
      const mean = s[F.sum20]! / 20;
      let acc = 0;
      let j = prior(ic, 19, cc);
      for (let i = 0; i < 20; i++) {
        const d = C[j]! - mean;
        acc = acc + d * d;
        if (++j === cc) j = 0;
      }
      s[F.sd] = Math.sqrt(acc / 20);
    }

    // Anchored VWAP of the typical price.
    const a = this.anchor(t);
    if (a !== s[F.anchor]) {
      s[F.anchor] = a;
      s[F.cumPv] = 0;
      s[F.cumV] = 0;
    }
    s[F.cumPv] = s[F.cumPv]! + vol * ((h + l + c) / 3);
    s[F.cumV] = s[F.cumV]! + vol;
  }

  private read(): IndicatorValues {
    const s = this.st.s;
    const count = s[F.n]! | 0;
    const c = this.C[(count - 1) % this.cc]!;
    let bbUpper: number | null = null;
    let bbMiddle: number | null = null;
    let bbLower: number | null = null;
    let bbWidth: number | null = null;
    let bbPb: number | null = null;
    if (count >= 20) {
      const mid = s[F.sum20]! / 20;
      const sd = s[F.sd]!;
      bbMiddle = mid;
      bbUpper = mid + sd * 2;
      bbLower = mid - sd * 2;
      bbWidth = (bbUpper - bbLower) / mid;
      bbPb = bbUpper > bbLower ? (c - bbLower) / (bbUpper - bbLower) : null;
    }
    const hasSignal = count >= 34;
    const cumV = s[F.cumV]!;
    return {
      t: s[F.lastT]!,
      rsi: count >= 15 ? nul(s[F.rsi]!) : null,
      macd: count >= 26 ? s[F.macd]! : null,
      macdSignal: hasSignal ? s[F.signal]! : null,
      macdHist: hasSignal ? s[F.macd]! - s[F.signal]! : null,
      bbUpper,
      bbMiddle,
      bbLower,
      bbWidth,
      bbPb,
      sma20: count >= 20 ? s[F.sum20]! / 20 : null,
      sma50: count >= 50 ? s[F.sum50]! / 50 : null,
      sma100: count >= 100 ? s[F.sum100]! / 100 : null,
      sma200: count >= 200 ? s[F.sum200]! / 200 : null,
      ema12: count >= 12 ? s[F.ema12]! : null,
      ema26: count >= 26 ? s[F.ema26]! : null,
      ema50: count >= 50 ? s[F.ema50]! : null,
      vwap: cumV > 0 ? s[F.cumPv]! / cumV : null,
      stochK: nul(s[F.sk0]!),
      stochD: nul((s[F.sk0]! + s[F.sk1]! + s[F.sk2]!) / 3),
      atr: count >= 15 ? s[F.atr]! : null,
      adx: s[F.dxCount]! >= 14 ? s[F.adx]! : null,
      pdi: count >= 15 ? nul(s[F.pdi]!) : null,
      mdi: count >= 15 ? nul(s[F.mdi]!) : null,
      volSma20: count >= 20 ? s[F.volSum20]! / 20 : null,
    };
  }
}
