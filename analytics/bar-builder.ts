/**
 * The bar builder: pure logic, no I/O, no wall clock. State + trades (or an exchange-clock
 * reading) → state + closed bars. The symbol actor's step (actors/symbol/symbol-step.ts) feeds it.
 *
 * Rules (DESIGN.md "Bars"):
 * - 1m bars are built from trades on the exchange clock; a bucket closes once the exchange
 *   clock passes its end by `graceMs` (late trades inside the grace still count).
 * - Higher timeframes roll up from closed 1m bars; they close when the same watermark passes
 *   their end, so a quiet stretch closes them too, never a wall-clock timer on its own.
 * - Empty buckets produce no bar; the next bar carries `gap` = number of empty buckets.
 * - A trade for an already closed bucket revises the bar (rev + 1) while the bucket is within
 *   the revision window; older ones are returned as `tooLate` for quarantine.
 * - Open = earliest trade by timestamp (ties: first to arrive), close = latest (ties: last).
 * - Source bars (complete 1m OHLCV from a source without trades) enter as finished buckets and
 *   close at once; higher timeframes roll them up like any 1m bar and carry `src`.
 * - A gap mark (an outage the exchange actor could not repair) flags the 1m bars it overlaps,
 *   and the higher bars containing them, as incomplete (`inc`), revising closed ones.
 */
import {
  type Bar,
  type BarBuilderState,
  bucketStart,
  type ClosedBarState,
  HIGHER_TIMEFRAMES,
  type OhlcvState,
  SCHEMA_VERSION,
  type SourceBar,
  TIMEFRAME_MS,
  type Timeframe,
  type Trade,
} from '../core/protocol/index.ts';

type HigherTf = (typeof HIGHER_TIMEFRAMES)[number];

/**
 * OHLCV of one bucket, without identity; `t` is the bucket open time. `src`: built from source
 * bars rather than trades; `inc`: marked incomplete (an unrepairable feed gap overlaps it).
 */
export type Ohlcv = OhlcvState;

type ClosedRef = ClosedBarState;

/**
 * The builder's state; it is the `state` of a symbol snapshot, so its shape (and validator) is
 * the wire type `BarBuilderState` in the protocol module:
 * - `forming`: 1m buckets not yet closed, ascending by open time (usually one, two in the grace);
 * - `agg`: per higher timeframe, the aggregate of the closed 1m bars of its current bucket;
 * - `watermark`: every bucket whose end is <= it is closed (exchange clock, ms);
 * - `exClock`: newest trade timestamp seen;
 * - `recent1m`: recently closed 1m bars, ascending, for revisions and gap counting;
 * - `lastClosed`: last closed bar per higher timeframe, for revisions and gap counting;
 * - `recentIds` / `idHead`: ids of the most recently applied trades (a ring buffer, next slot
 *   to overwrite once full), to drop re-delivered ones.
 */
export type BuilderState = BarBuilderState;

export interface BuilderOptions {
  graceMs: number;
  /** How many closed 1m bars stay revisable. */
  revisionWindow: number;
  /** How many recent trade ids to remember for de-duplication. */
  idMemory?: number;
}

export interface StepResult {
  /** Closed bars and revisions, in the order they must be published. */
  closed: Bar[];
  /** True when some forming bar changed. */
  formingChanged: boolean;
  /** Trades too old to revise their bar. */
  tooLate: Trade[];
  /** Trades dropped as already applied. */
  duplicates: number;
}

const ONE_MIN = TIMEFRAME_MS['1m'];

export function emptyState(ex: string, sym: string): BuilderState {
  return {
    ex,
    sym,
    forming: [],
    agg: {},
    watermark: Number.NEGATIVE_INFINITY,
    exClock: null,
    recent1m: [],
    lastClosed: {},
    recentIds: [],
  };
}

function barOfTrade(t: number, trade: Trade): Ohlcv {
  return {
    t,
    o: trade.px,
    h: trade.px,
    l: trade.px,
    c: trade.px,
    vol: trade.qty,
    n: 1,
    ft: trade.ts,
    lt: trade.ts,
  };
}

/**
 * Merges OHLCV that arrived later into `bar`: open from the earliest first trade, close from
 * the latest last trade (ties: the later arrival). One body for trades and for bars.
 */
function mergeInto(
  bar: Ohlcv,
  o: number,
  h: number,
  l: number,
  c: number,
  vol: number,
  n: number,
  ft: number,
  lt: number,
): void {
  if (ft < bar.ft) {
    bar.o = o;
    bar.ft = ft;
  }
  if (lt >= bar.lt) {
    bar.c = c;
    bar.lt = lt;
  }
  if (h > bar.h) bar.h = h;
  if (l < bar.l) bar.l = l;
  bar.vol += vol;
  bar.n += n;
}

function mergeTrade(bar: Ohlcv, trade: Trade): void {
  const { px, ts } = trade;
  mergeInto(bar, px, px, px, px, trade.qty, 1, ts, ts);
}

/** Merges `b` into `a`; `b` is later in arrival order. */
export function mergeBar(a: Ohlcv, b: Ohlcv): void {
  mergeInto(a, b.o, b.h, b.l, b.c, b.vol, b.n, b.ft, b.lt);
  if (b.src) a.src = true;
  if (b.inc) a.inc = true;
}

function toBar(s: BuilderState, tf: Timeframe, b: Ohlcv, closed: boolean, rev: number, gap: number): Bar {
  return {
    v: SCHEMA_VERSION,
    ex: s.ex,
    sym: s.sym,
    tf,
    t: b.t,
    o: b.o,
    h: b.h,
    l: b.l,
    c: b.c,
    vol: b.vol,
    n: b.n,
    closed,
    rev,
    gap,
    ft: b.ft,
    lt: b.lt,
    ...(b.src ? { src: true as const } : {}),
    ...(b.inc ? { inc: true as const } : {}),
  };
}

function gapBetween(prevOpen: number | undefined, open: number, tf: Timeframe): number {
  return prevOpen === undefined ? 0 : Math.max(0, Math.round((open - prevOpen) / TIMEFRAME_MS[tf]) - 1);
}

export class BarBuilder {
  readonly opts: Required<BuilderOptions>;

  constructor(
    public state: BuilderState,
    opts: BuilderOptions,
  ) {
    this.opts = { idMemory: 512, ...opts };
    this.idSet = new Set(state.recentIds);
  }

  private idSet: Set<string>;

  /** True when a trade with this id was applied recently (it would be dropped as a duplicate). */
  hasSeen(id: string): boolean {
    return this.idSet.has(id);
  }

  /** True when the source bar of minute `t` was applied recently (a repeat would be dropped). */
  hasSeenSourceBar(t: number): boolean {
    return this.idSet.has(`bar:${t}`);
  }

  /** Applies trades in arrival order, then advances the watermark by the exchange clock. */
  applyTrades(trades: readonly Trade[]): StepResult {
    const out: StepResult = { closed: [], formingChanged: false, tooLate: [], duplicates: 0 };
    for (const trade of trades) {
      if (this.idSet.has(trade.id)) {
        out.duplicates++;
        continue;
      }
      this.rememberId(trade.id);
      const t = bucketStart(trade.ts, '1m');
      if (t + ONE_MIN <= this.state.watermark) {
        if (!this.revise(trade, t, out)) out.tooLate.push(trade);
        continue;
      }
      this.addToForming(trade, t);
      out.formingChanged = true;
      if (this.state.exClock === null || trade.ts > this.state.exClock) this.state.exClock = trade.ts;
    }
    if (this.state.exClock !== null) this.closeThrough(this.state.exClock - this.opts.graceMs, out);
    return out;
  }

  /**
   * Applies complete 1m source bars (ascending). Each closes at once; one for a bucket that
   * already closed is refused as too late (a source delivers each finished minute once).
   */
  applySourceBars(bars: readonly SourceBar[]): StepResult & { tooLateBars: SourceBar[] } {
    const out = {
      closed: [] as Bar[],
      formingChanged: false,
      tooLate: [],
      duplicates: 0,
      tooLateBars: [] as SourceBar[],
    };
    for (const b of bars) {
      const id = `bar:${b.t}`;
      if (this.idSet.has(id)) {
        out.duplicates++;
        continue;
      }
      if (b.t + ONE_MIN <= this.state.watermark) {
        out.tooLateBars.push(b);
        continue;
      }
      this.rememberId(id);
      const forming = this.state.forming;
      // Field by field: the state is a strict wire type, so no stray key of the message may enter.
      const { t, o, h, l, c, vol } = b;
      const bar: Ohlcv = { t, o, h, l, c, vol, n: 0, ft: t, lt: t + ONE_MIN - 1, src: true };
      const i = forming.findIndex((f) => f.t >= b.t);
      if (i >= 0 && forming[i]!.t === b.t) mergeBar(forming[i]!, bar);
      else forming.splice(i < 0 ? forming.length : i, 0, bar);
      const end = b.t + ONE_MIN - 1;
      if (this.state.exClock === null || end > this.state.exClock) this.state.exClock = end;
      this.closeThrough(b.t + ONE_MIN, out);
    }
    return out;
  }

  /**
   * Marks every bar overlapping [from, to) incomplete: forming ones in place, closed ones still
   * held (revision window, last closed higher bar) as a revision.
   */
  markGap(from: number, to: number): StepResult {
    const out: StepResult = { closed: [], formingChanged: false, tooLate: [], duplicates: 0 };
    const s = this.state;
    const overlaps = (t: number, tf: Timeframe) => t < to && t + TIMEFRAME_MS[tf] > from;
    for (const m of s.forming)
      if (overlaps(m.t, '1m') && !m.inc) {
        m.inc = true;
        out.formingChanged = true;
      }
    for (const ref of s.recent1m)
      if (overlaps(ref.bar.t, '1m') && !ref.bar.inc) {
        ref.bar.inc = true;
        ref.rev += 1;
        out.closed.push(toBar(s, '1m', ref.bar, true, ref.rev, ref.gap));
      }
    for (const tf of HIGHER_TIMEFRAMES) {
      const agg = s.agg[tf];
      if (agg && overlaps(agg.t, tf) && !agg.inc) {
        agg.inc = true;
        out.formingChanged = true;
      }
      const ref = s.lastClosed[tf];
      if (ref && overlaps(ref.bar.t, tf) && !ref.bar.inc) {
        ref.bar.inc = true;
        ref.rev += 1;
        out.closed.push(toBar(s, tf, ref.bar, true, ref.rev, ref.gap));
      }
    }
    return out;
  }

  /** Advances the exchange clock without trades (quiet market, driven by a timer). */
  advanceClock(exchangeTime: number): StepResult {
    const out: StepResult = { closed: [], formingChanged: false, tooLate: [], duplicates: 0 };
    this.closeThrough(exchangeTime - this.opts.graceMs, out);
    return out;
  }

  /** Exchange time at which the next bucket closes (grace included), or null if nothing is open. */
  nextCloseAt(): number | null {
    let end = Number.POSITIVE_INFINITY;
    const first = this.state.forming[0];
    if (first) end = first.t + ONE_MIN;
    for (const tf of HIGHER_TIMEFRAMES) {
      const a = this.state.agg[tf];
      if (a) end = Math.min(end, a.t + TIMEFRAME_MS[tf]);
    }
    return Number.isFinite(end) ? end + this.opts.graceMs : null;
  }

  /** The forming bar of every timeframe for the newest bucket (what a live chart shows). */
  formingBars(): Bar[] {
    const s = this.state;
    const newest = s.forming.at(-1);
    const bars: Bar[] = [];
    if (newest)
      bars.push(toBar(s, '1m', newest, false, 0, gapBetween(s.recent1m.at(-1)?.bar.t, newest.t, '1m')));
    for (const tf of HIGHER_TIMEFRAMES) {
      const agg = s.agg[tf];
      const target = newest ? bucketStart(newest.t, tf) : agg?.t;
      if (target === undefined) continue;
      let bar: Ohlcv | null = agg && agg.t === target ? { ...agg } : null;
      for (const m of s.forming) {
        if (bucketStart(m.t, tf) !== target) continue;
        if (bar) mergeBar(bar, m);
        else bar = { ...m, t: target };
      }
      if (bar) bars.push(toBar(s, tf, bar, false, 0, gapBetween(s.lastClosed[tf]?.bar.t, target, tf)));
    }
    return bars;
  }

  private rememberId(id: string): void {
    const ids = this.state.recentIds;
    this.idSet.add(id);
    if (ids.length < this.opts.idMemory) {
      ids.push(id);
      return;
    }
    // Full: overwrite the oldest slot (O(1) per trade; a shifting array costs O(n)).
    const head = (this.state.idHead ?? 0) % ids.length;
    this.idSet.delete(ids[head]!);
    ids[head] = id;
    this.state.idHead = (head + 1) % ids.length;
  }

  private addToForming(trade: Trade, t: number): void {
    const forming = this.state.forming;
    // Newest bucket is the common case; search backwards.
    for (let i = forming.length - 1; i >= 0; i--) {
      const bar = forming[i]!;
      if (bar.t === t) {
        mergeTrade(bar, trade);
        return;
      }
      if (bar.t < t) {
        forming.splice(i + 1, 0, barOfTrade(t, trade));
        return;
      }
    }
    forming.unshift(barOfTrade(t, trade));
  }

  /** A trade for a closed 1m bucket: revise it and every higher bar containing it, or refuse. */
  private revise(trade: Trade, t: number, out: StepResult): boolean {
    const s = this.state;
    const oldest = s.recent1m[0]?.bar.t;
    if (oldest === undefined || t < oldest) return false;
    // Every higher timeframe must be revisable too, or none is touched.
    for (const tf of HIGHER_TIMEFRAMES) {
      const hb = bucketStart(t, tf);
      const stillOpen = hb + TIMEFRAME_MS[tf] > s.watermark;
      const last = s.lastClosed[tf]?.bar.t;
      // Closed buckets are revisable if they hold the last closed bar, or if they closed empty
      // after it (the trade then makes their first bar, as for 1m).
      if (!stillOpen && last !== hb && !(last === undefined || hb > last)) return false;
    }
    const idx = s.recent1m.findIndex((r) => r.bar.t === t);
    if (idx >= 0) {
      const ref = s.recent1m[idx]!;
      mergeTrade(ref.bar, trade);
      ref.rev += 1;
      out.closed.push(toBar(s, '1m', ref.bar, true, ref.rev, ref.gap));
    } else {
      // The bucket had no trades when it closed: it becomes a bar now.
      const at = s.recent1m.findIndex((r) => r.bar.t > t);
      const prev = s.recent1m[at < 0 ? s.recent1m.length - 1 : at - 1];
      const ref: ClosedRef = { bar: barOfTrade(t, trade), rev: 0, gap: gapBetween(prev?.bar.t, t, '1m') };
      s.recent1m.splice(at < 0 ? s.recent1m.length : at, 0, ref);
      out.closed.push(toBar(s, '1m', ref.bar, true, 0, ref.gap));
    }
    for (const tf of HIGHER_TIMEFRAMES) {
      const hb = bucketStart(t, tf);
      const agg = s.agg[tf];
      if (hb + TIMEFRAME_MS[tf] > s.watermark) {
        // Still forming: an open bucket's aggregate is always for hb (older ones closed already).
        if (agg) mergeTrade(agg, trade);
        else s.agg[tf] = barOfTrade(hb, trade);
        out.formingChanged = true;
      } else if (s.lastClosed[tf]?.bar.t === hb) {
        const ref = s.lastClosed[tf]!;
        mergeTrade(ref.bar, trade);
        ref.rev += 1;
        out.closed.push(toBar(s, tf, ref.bar, true, ref.rev, ref.gap));
      } else {
        const ref: ClosedRef = {
          bar: barOfTrade(hb, trade),
          rev: 0,
          gap: gapBetween(s.lastClosed[tf]?.bar.t, hb, tf),
        };
        s.lastClosed[tf] = ref;
        out.closed.push(toBar(s, tf, ref.bar, true, 0, ref.gap));
      }
    }
    return true;
  }

  private closeThrough(watermark: number, out: StepResult): void {
    const s = this.state;
    if (!(watermark > s.watermark)) return;
    while (s.forming.length > 0 && s.forming[0]!.t + ONE_MIN <= watermark) {
      const m = s.forming.shift()!;
      for (const tf of HIGHER_TIMEFRAMES) {
        const hb = bucketStart(m.t, tf);
        const agg = s.agg[tf];
        if (agg && agg.t !== hb) this.closeHigher(tf, out);
        const cur = s.agg[tf];
        if (cur) mergeBar(cur, m);
        else s.agg[tf] = { ...m, t: hb };
      }
      const gap = gapBetween(s.recent1m.at(-1)?.bar.t, m.t, '1m');
      s.recent1m.push({ bar: m, rev: 0, gap });
      if (s.recent1m.length > this.opts.revisionWindow) s.recent1m.shift();
      out.closed.push(toBar(s, '1m', m, true, 0, gap));
    }
    for (const tf of HIGHER_TIMEFRAMES) {
      const agg = s.agg[tf];
      if (agg && agg.t + TIMEFRAME_MS[tf] <= watermark) this.closeHigher(tf, out);
    }
    s.watermark = watermark;
    out.formingChanged ||= out.closed.length > 0;
  }

  private closeHigher(tf: HigherTf, out: StepResult): void {
    const s = this.state;
    const bar = s.agg[tf]!;
    const gap = gapBetween(s.lastClosed[tf]?.bar.t, bar.t, tf);
    s.lastClosed[tf] = { bar, rev: 0, gap };
    delete s.agg[tf];
    out.closed.push(toBar(s, tf, bar, true, 0, gap));
  }
}

/**
 * Reference implementation for tests and verification: bars computed directly from a full
 * trade list (what "the bars computed from the full trade sequence" means).
 */
export function barsFromTrades(ex: string, sym: string, tf: Timeframe, trades: readonly Trade[]): Bar[] {
  const byBucket = new Map<number, Ohlcv>();
  for (const trade of trades) {
    const t = bucketStart(trade.ts, tf);
    const bar = byBucket.get(t);
    if (bar) mergeTrade(bar, trade);
    else byBucket.set(t, barOfTrade(t, trade));
  }
  const sorted = [...byBucket.values()].sort((a, b) => a.t - b.t);
  const s = emptyState(ex, sym);
  return sorted.map((b, i) => toBar(s, tf, b, true, 0, gapBetween(sorted[i - 1]?.t, b.t, tf)));
}
