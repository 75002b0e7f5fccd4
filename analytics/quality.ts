/**
 * Data-quality checks on one symbol's trades before they reach the bar builder. Pure: the caller
 * passes the trade's source and the current time. O(1) per trade: rolling statistics are kept as
 * running sums over a ring of the last accepted trades (recomputed exactly once per window to
 * stop floating-point drift), never by re-reading the window.
 *
 * Checks, in the order they are applied (the first one set to `quarantine` that fails decides):
 * - invalid: price finite and > 0, amount finite and >= 0, timestamp finite and not before
 *   `invalid.minTs` (2000-01-01). Always quarantines: a NaN or negative price cannot be "flagged"
 *   into a bar.
 * - future: timestamp more than `future.maxAheadMs` ahead of `now`.
 * - stale: older than `now` by more than `stale.liveMaxAgeMs` (source `live`) or
 *   `stale.repairMaxAgeMs` (source `repair`, a backfill); `replay` is never stale.
 * - jump: price differs from the last accepted price by more than `jump.pct` percent.
 * - zscore: |price − mean| / std of the last `zscore.window` accepted prices exceeds
 *   `zscore.sigma`, once `zscore.minHistory` prices are known. std is the population standard
 *   deviation, floored at `zscore.minRelStd` × mean so a market trading at one price does not
 *   turn every tick into an anomaly.
 * - volume: amount above `volume.factor` (100) × the mean amount of the last `volume.window`
 *   accepted trades (once `volume.minHistory` are known and that mean is > 0) is flagged; above
 *   `volume.quarantineFactor` (500) × it is quarantined. A run of quarantined oversize trades,
 *   confirmed like a price run (below), is taken as a new normal size, so a symbol whose sizes
 *   really change is not locked out.
 *
 * A price check that quarantines would lock a symbol out after a real move (every later trade
 * is just as far from the last accepted price). So a run of price-rejected trades on the same
 * side of the last accepted price is taken as a new level once it is confirmed over several
 * messages and some time (analytics/confirmation.ts: `confirmAfter` trades from
 * `confirmMessages` distinct messages across `confirmSpanMs`): the confirming trade is accepted
 * (flagged with the check) and the price statistics restart from it; the run's earlier trades
 * stay quarantined. One published message, however many trades it carries, confirms nothing.
 *
 * Source bars (`checkBar`, 1m bars of a feed without trades) pass the same checks: invalid
 * (finite, low > 0, low ≤ open, close ≤ high, volume ≥ 0, minute-aligned), future (the minute
 * must have ended), jump (the high or the low, whichever is farther from the last accepted
 * price), z-score (the close; the statistics keep closes) and volume (the bar's volume against recent
 * bars'). Freshness is not judged: a feed publishes whole sessions of past bars after a gap.
 *
 * Quality score: an exponentially weighted share of clean trades (accepted without any flag
 * = 1, flagged or quarantined = 0), starting at 1, half-life `scoreHalfLife` trades; in [0, 1].
 */
import type { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import type { SourceBar, Trade } from '../core/protocol/index.ts';
import {
  QUALITY_CHECKS,
  type QualityCheck,
  type QualityConfig,
  qualityConfigSchema,
} from '../core/quality-config.ts';
import { type ConfirmationRule, ConfirmationRun, type RunState } from './confirmation.ts';

// The checks' settings are part of the configuration schema (TICKMESH_CONFIG analytics.quality).
export {
  QUALITY_ACTIONS,
  QUALITY_CHECKS,
  type QualityAction,
  type QualityCheck,
  type QualityConfig,
  qualityConfigSchema,
} from '../core/quality-config.ts';

export type TradeSource = 'live' | 'repair' | 'replay';

export type QualityResult =
  | { ok: true; flags?: readonly QualityCheck[] }
  | { ok: false; check: QualityCheck; reason: string };

export interface QualityCounters {
  checked: number;
  accepted: number;
  quarantined: Record<QualityCheck, number>;
  flagged: Record<QualityCheck, number>;
}

interface RollingState {
  values: number[];
  shift: number;
  sum: number;
  sumSq: number;
  sinceExact: number;
}

export interface QualityState {
  v: 1;
  prices: RollingState;
  amounts: RollingState;
  lastPx: number | null;
  /** Run of consecutive price rejections (side +1 above, −1 below the last accepted price). */
  priceRun?: RunState;
  /** Run of consecutive volume rejections. */
  volumeRun?: RunState;
  /** Before runs counted messages: the price run's side and length, the volume run's length. */
  pendingSide?: number;
  pendingCount?: number;
  volumePending?: number;
  score: number;
  counters: QualityCounters;
}

const ONE_MIN = 60_000;

/**
 * Mean and population variance of the last `cap` values in O(1): sums of (x − shift) and its
 * square, with shift near the mean to avoid cancellation, recomputed exactly every `cap` pushes.
 */
class RollingWindow {
  private readonly buf: Float64Array;
  private len = 0;
  private head = 0;
  private shift = 0;
  private sum = 0;
  private sumSq = 0;
  private sinceExact = 0;

  constructor(readonly cap: number) {
    this.buf = new Float64Array(cap);
  }

  get count(): number {
    return this.len;
  }

  mean(): number {
    return this.shift + this.sum / this.len;
  }

  variance(): number {
    const m = this.sum / this.len;
    return Math.max(this.sumSq / this.len - m * m, 0);
  }

  push(x: number): void {
    if (this.len === 0) this.shift = x;
    const d = x - this.shift;
    if (this.len === this.cap) {
      const out = this.buf[this.head]! - this.shift;
      this.sum += d - out;
      this.sumSq += d * d - out * out;
    } else {
      this.len++;
      this.sum += d;
      this.sumSq += d * d;
    }
    this.buf[this.head] = x;
    if (++this.head === this.cap) this.head = 0;
    if (++this.sinceExact >= this.cap) this.recompute();
  }

  clear(): void {
    this.len = 0;
    this.head = 0;
    this.sum = 0;
    this.sumSq = 0;
    this.sinceExact = 0;
  }

  /** Exact sums, oldest value first (the same order after a restore, so the same bits). */
  private recompute(): void {
    const { buf, len, cap } = this;
    const start = len === cap ? this.head : 0;
    let s = 0;
    for (let i = 0, j = start; i < len; i++) {
      s += buf[j]!;
      if (++j === cap) j = 0;
    }
    const shift = s / len;
    let a = 0;
    let q = 0;
    for (let i = 0, j = start; i < len; i++) {
      const d = buf[j]! - shift;
      a += d;
      q += d * d;
      if (++j === cap) j = 0;
    }
    this.shift = shift;
    this.sum = a;
    this.sumSq = q;
    this.sinceExact = 0;
  }

  toState(): RollingState {
    const values: number[] = [];
    const start = this.len === this.cap ? this.head : 0;
    for (let i = 0; i < this.len; i++) values.push(this.buf[(start + i) % this.cap]!);
    return { values, shift: this.shift, sum: this.sum, sumSq: this.sumSq, sinceExact: this.sinceExact };
  }

  load(s: RollingState): void {
    if (!Array.isArray(s?.values) || s.values.length > this.cap)
      throw new ValidationError('quality state', 'rolling window does not fit the configured window');
    this.clear();
    s.values.forEach((x, i) => {
      this.buf[i] = x;
    });
    this.len = s.values.length;
    this.head = this.len % this.cap;
    this.shift = s.shift;
    this.sum = s.sum;
    this.sumSq = s.sumSq;
    this.sinceExact = s.sinceExact;
  }
}

const zeroCounts = (): Record<QualityCheck, number> =>
  Object.fromEntries(QUALITY_CHECKS.map((c) => [c, 0])) as Record<QualityCheck, number>;

const CLEAN: QualityResult = Object.freeze({ ok: true }) as QualityResult;
/** One shared, frozen result per combination of flags: accepting a flagged trade allocates nothing. */
const FLAGGED: QualityResult[] = [];
/** The checks of each combination of flag bits. */
const FLAG_NAMES: (readonly QualityCheck[])[] = [];
// Bit per check, for collecting flags without allocating on the clean path.
const BIT: Record<QualityCheck, number> = {
  invalid: 1,
  future: 2,
  stale: 4,
  jump: 8,
  zscore: 16,
  volume: 32,
};

export class QualityChecker {
  readonly config: Readonly<QualityConfig>;
  private readonly prices: RollingWindow;
  private readonly amounts: RollingWindow;
  private lastPx = Number.NaN;
  private readonly priceRun = new ConfirmationRun();
  private readonly volumeRun = new ConfirmationRun();
  private readonly rule: ConfirmationRule;
  private score = 1;
  private readonly keep: number;
  private counters: QualityCounters = {
    checked: 0,
    accepted: 0,
    quarantined: zeroCounts(),
    flagged: zeroCounts(),
  };

  constructor(config: z.input<typeof qualityConfigSchema> = {}, state?: QualityState) {
    this.config = Object.freeze(qualityConfigSchema.parse(config));
    this.prices = new RollingWindow(this.config.zscore.window);
    this.amounts = new RollingWindow(this.config.volume.window);
    this.keep = 2 ** (-1 / this.config.scoreHalfLife);
    this.rule = Object.freeze({
      trades: this.config.confirmAfter,
      messages: this.config.confirmMessages,
      spanMs: this.config.confirmSpanMs,
    });
    if (state) this.load(state);
  }

  /**
   * Judges one trade of the published message `message` (its stream sequence), stored at `now`;
   * accepted trades (clean or flagged) update the rolling statistics.
   */
  check(trade: Trade, source: TradeSource, now: number, message: number): QualityResult {
    this.counters.checked++;
    const { px, qty, ts } = trade;
    if (
      !(
        px > 0 &&
        px < Number.POSITIVE_INFINITY &&
        qty >= 0 &&
        qty < Number.POSITIVE_INFINITY &&
        ts >= this.config.invalid.minTs &&
        ts < Number.POSITIVE_INFINITY
      )
    ) {
      return this.reject('invalid', `px ${px}, qty ${qty}, ts ${ts} out of range`);
    }
    // Replayed history is published as fast as it can be read: its own clock spaces it.
    return this.judge(px, px, px, qty, ts, source, now, source === 'replay' ? ts : now, message);
  }

  /** Judges one source bar (a 1m bar of a feed without trades) of message `message`, stored at `now`. */
  checkBar(bar: SourceBar, now: number, message: number): QualityResult {
    this.counters.checked++;
    const { t, o, h, l, c, vol } = bar;
    if (
      !(
        l > 0 &&
        l <= o &&
        l <= c &&
        o <= h &&
        c <= h &&
        h < Number.POSITIVE_INFINITY &&
        vol >= 0 &&
        vol < Number.POSITIVE_INFINITY &&
        t >= this.config.invalid.minTs &&
        t % ONE_MIN === 0
      )
    ) {
      return this.reject('invalid', `bar t ${t} o ${o} h ${h} l ${l} c ${c} vol ${vol} inconsistent`);
    }
    // The bar's last millisecond: a minute that has not ended is not a finished bar.
    return this.judge(l, h, c, vol, t + ONE_MIN - 1, null, now, now, message);
  }

  /**
   * The checks after `invalid`: prices `lo`..`hi` (equal for a trade) closing at `close`, amount
   * `qty`, at exchange time `ts`; `source` null skips freshness; `at` is the confirmation clock.
   */
  private judge(
    lo: number,
    hi: number,
    close: number,
    qty: number,
    ts: number,
    source: TradeSource | null,
    now: number,
    at: number,
    message: number,
  ): QualityResult {
    const cfg = this.config;
    let flags = 0;

    if (cfg.future.action !== 'off' && ts > now + cfg.future.maxAheadMs) {
      if (cfg.future.action === 'quarantine')
        return this.reject('future', `ts ${ts} is ${ts - now} ms ahead of now`);
      flags |= BIT.future;
    }
    if (cfg.stale.action !== 'off' && source !== null && source !== 'replay') {
      const maxAge = source === 'live' ? cfg.stale.liveMaxAgeMs : cfg.stale.repairMaxAgeMs;
      if (now - ts > maxAge) {
        if (cfg.stale.action === 'quarantine')
          return this.reject('stale', `ts ${ts} is ${now - ts} ms old (${source})`);
        flags |= BIT.stale;
      }
    }

    // Price checks against the accepted history, on the price farthest from the last one.
    const last = this.lastPx;
    const px = lo !== hi && !Number.isNaN(last) && last - lo > hi - last ? lo : hi;
    let priceReject: QualityCheck | null = null;
    let reason = '';
    if (cfg.jump.action !== 'off' && !Number.isNaN(last)) {
      const pct = Math.abs(px / last - 1) * 100;
      if (pct > cfg.jump.pct) {
        if (cfg.jump.action === 'quarantine') {
          priceReject = 'jump';
          reason = `px ${px} is ${pct.toFixed(2)}% from the last accepted ${last}`;
        } else flags |= BIT.jump;
      }
    }
    const z = cfg.zscore;
    if (priceReject === null && z.action !== 'off' && this.prices.count >= z.minHistory) {
      const mean = this.prices.mean();
      const std = Math.max(Math.sqrt(this.prices.variance()), mean * z.minRelStd);
      // Against a mean of closes, a bar's close: its high and low sit off that mean by nature.
      const score = Math.abs(close - mean) / std;
      if (score > z.sigma) {
        if (z.action === 'quarantine') {
          priceReject = 'zscore';
          reason = `px ${close} is ${score.toFixed(1)} sigma from the mean ${mean}`;
        } else flags |= BIT.zscore;
      }
    }
    if (priceReject !== null) {
      const judged = priceReject === 'jump' ? px : close;
      const side = judged > last || Number.isNaN(last) ? 1 : -1;
      if (!this.priceRun.add(side, message, at, this.rule))
        return this.reject(priceReject, `${reason}${this.pending(this.priceRun)}`);
      // A run at a new level, confirmed over messages and time: a real move. Restart the price statistics there.
      this.prices.clear();
      flags |= BIT[priceReject];
    }
    this.priceRun.reset();

    const vcfg = cfg.volume;
    if (vcfg.action !== 'off' && this.amounts.count >= vcfg.minHistory) {
      const mean = this.amounts.mean();
      const hard = vcfg.quarantineFactor !== null && qty > vcfg.quarantineFactor * mean;
      if (mean > 0 && (qty > vcfg.factor * mean || hard)) {
        if (vcfg.action === 'quarantine' || hard) {
          if (!this.volumeRun.add(1, message, at, this.rule))
            return this.reject(
              'volume',
              `qty ${qty} is ${(qty / mean).toFixed(0)}x the mean ${mean}${this.pending(this.volumeRun)}`,
            );
          // Sizes really changed (a confirmed run of them): restart the size statistics there.
          this.amounts.clear();
        }
        flags |= BIT.volume;
      }
    }
    this.volumeRun.reset();

    // Accepted.
    this.counters.accepted++;
    this.lastPx = close;
    this.prices.push(close);
    this.amounts.push(qty);
    this.score = this.score * this.keep + (flags === 0 ? 1 - this.keep : 0);
    if (flags === 0) return CLEAN;
    let names = FLAG_NAMES[flags];
    if (!names) {
      names = Object.freeze(QUALITY_CHECKS.filter((check) => flags & BIT[check]));
      FLAG_NAMES[flags] = names;
      FLAGGED[flags] = Object.freeze({ ok: true, flags: names });
    }
    // Only the checks that flagged (usually one), not a test of every check.
    for (const check of names) this.counters.flagged[check]++;
    return FLAGGED[flags]!;
  }

  /** Where an unconfirmed run stands, for the quarantine reason. */
  private pending(run: ConfirmationRun): string {
    return this.rule.trades > 0 ? ` (unconfirmed run of ${run.length})` : '';
  }

  /** Mean and (floored-free) population std of the accepted prices in the z-score window. */
  priceStats(): { count: number; mean: number | null; std: number | null } {
    const w = this.prices;
    return w.count === 0
      ? { count: 0, mean: null, std: null }
      : { count: w.count, mean: w.mean(), std: Math.sqrt(w.variance()) };
  }

  /** Exponentially weighted share of clean trades, in [0, 1] (1 before any trade). */
  get qualityScore(): number {
    return this.score;
  }

  stats(): QualityCounters {
    const c = this.counters;
    return {
      checked: c.checked,
      accepted: c.accepted,
      quarantined: { ...c.quarantined },
      flagged: { ...c.flagged },
    };
  }

  toState(): QualityState {
    return {
      v: 1,
      prices: this.prices.toState(),
      amounts: this.amounts.toState(),
      lastPx: Number.isNaN(this.lastPx) ? null : this.lastPx,
      priceRun: this.priceRun.toState(),
      volumeRun: this.volumeRun.toState(),
      score: this.score,
      counters: this.stats(),
    };
  }

  private load(s: QualityState): void {
    if (s?.v !== 1) throw new ValidationError('quality state', `unsupported version ${String(s?.v)}`);
    this.prices.load(s.prices);
    this.amounts.load(s.amounts);
    this.lastPx = s.lastPx ?? Number.NaN;
    this.priceRun.load(s.priceRun ?? ConfirmationRun.legacy(s.pendingCount ?? 0, s.pendingSide ?? 0));
    this.volumeRun.load(s.volumeRun ?? ConfirmationRun.legacy(s.volumePending ?? 0, 1));
    this.score = s.score;
    this.counters = {
      checked: s.counters.checked,
      accepted: s.counters.accepted,
      quarantined: { ...zeroCounts(), ...s.counters.quarantined },
      flagged: { ...zeroCounts(), ...s.counters.flagged },
    };
  }

  private reject(check: QualityCheck, reason: string): QualityResult {
    this.counters.quarantined[check]++;
    this.score *= this.keep;
    return { ok: false, check, reason };
  }
}
