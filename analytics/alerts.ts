/**
 * Alert rule evaluation for one symbol: pure, state in plain JSON; delivery happens elsewhere.
 *
 * Conditions, on a bar of the rule's timeframe (default 1m) with close c:
 * - PRICE_ABOVE / PRICE_BELOW: c > threshold / c < threshold.
 * - PCT_CHANGE: |c / previous closed bar's close − 1| × 100 >= threshold (no previous close:
 *   not evaluated).
 * - RSI_ABOVE / RSI_BELOW: RSI(14) > threshold / < threshold.
 * - MACD_CROSS_UP / MACD_CROSS_DOWN: MACD − signal was <= 0 (>= 0) on the previous closed bar and
 *   is > 0 (< 0) now; the threshold is unused.
 * - VOLUME_SPIKE: volume >= threshold × volume SMA20 (the SMA includes this bar, as previewed).
 * Forming bars are judged with preview indicators, closed bars with their final ones.
 *
 * Firing: a rule fires when its condition is true and the rule is armed; firing disarms it, and
 * it re-arms once the condition has been seen false (one firing per crossing; a rule whose
 * condition is already true on its first evaluation fires then). A crossing within `cooldownMs`
 * of the last firing does not fire; the rule stays armed and fires on the first evaluation after
 * the cooldown if the condition still holds. `oneTime` rules are done after their first firing.
 * A condition that cannot be evaluated (indicator still null) leaves the state as it is.
 *
 * Revisions: a revised last closed bar is judged against the bar before it; revisions of older
 * bars are not judged (alerts are about now, not about history being corrected), but their
 * recomputed values update the references (`noteClosed`).
 *
 * Firing ids are `<rule id>:<timeframe>:<bar open time>:<firing number>`: evaluating the same
 * bars from the same state gives the same ids, so storage can de-duplicate after a restart.
 */
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { type Bar, TIMEFRAMES, type Timeframe } from '../core/protocol/index.ts';
import type { IndicatorValues } from './indicators.ts';

export const ALERT_CONDITIONS = [
  'PRICE_ABOVE',
  'PRICE_BELOW',
  'PCT_CHANGE',
  'RSI_ABOVE',
  'RSI_BELOW',
  'MACD_CROSS_UP',
  'MACD_CROSS_DOWN',
  'VOLUME_SPIKE',
] as const;
export type AlertCondition = (typeof ALERT_CONDITIONS)[number];

export const alertRuleSchema = z
  .object({
    id: z.string().min(1).max(128),
    exchange: z.string().min(1),
    symbol: z.string().min(1),
    /** Bars of this timeframe are evaluated; default 1m. */
    timeframe: z.enum(TIMEFRAMES).optional(),
    condition: z.enum(ALERT_CONDITIONS),
    threshold: z.number().default(0),
    cooldownMs: z.number().int().min(0).default(0),
    oneTime: z.boolean().default(false),
    enabled: z.boolean().default(true),
  })
  .strict()
  .superRefine((r, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: 'custom', path: ['threshold'], message });
    if (
      (r.condition === 'RSI_ABOVE' || r.condition === 'RSI_BELOW') &&
      !(r.threshold >= 0 && r.threshold <= 100)
    )
      bad('RSI thresholds lie in [0, 100]');
    if (r.condition === 'PCT_CHANGE' && !(r.threshold > 0)) bad('a percentage change threshold must be > 0');
    if (r.condition === 'VOLUME_SPIKE' && !(r.threshold > 0)) bad('a volume spike factor must be > 0');
    if ((r.condition === 'PRICE_ABOVE' || r.condition === 'PRICE_BELOW') && !(r.threshold > 0))
      bad('a price threshold must be > 0');
  });
export type AlertRule = z.output<typeof alertRuleSchema>;

export interface AlertFiring {
  /** Deterministic: `<ruleId>:<timeframe>:<barT>:<seq>`. */
  id: string;
  ruleId: string;
  exchange: string;
  symbol: string;
  timeframe: Timeframe;
  condition: AlertCondition;
  threshold: number;
  /** What was compared with the threshold: price, percent change, RSI, MACD − signal, volume ratio. */
  value: number;
  barT: number;
  /** True when judged on a closed bar, false on a forming one. */
  closed: boolean;
  /** `now` of the evaluation. */
  at: number;
  /** 1 for the rule's first firing, then 2, 3, … */
  seq: number;
  /** A oneTime rule that will not fire again. */
  final: boolean;
}

export interface AlertContext {
  bar: Bar;
  closed: boolean;
  /** Values as of this bar (`IndicatorSeries.update` for closed, `.preview` for forming). */
  indicators: IndicatorValues | null;
  now: number;
}

interface RuleState {
  /** Changing condition, threshold or timeframe resets a rule's state. */
  key: string;
  armed: boolean;
  fired: number;
  lastFiredAt: number | null;
  done: boolean;
}

/** The last two closed bars of a timeframe: what "previous" means for forming and revised bars. */
interface ClosedRef {
  t: number;
  close: number;
  hist: number | null;
  prevT: number | null;
  prevClose: number | null;
  prevHist: number | null;
}

export interface AlertEvaluatorState {
  v: 1;
  rules: Record<string, RuleState>;
  refs: Partial<Record<Timeframe, ClosedRef>>;
}

const keyOf = (r: AlertRule) => `${r.condition}|${r.threshold}|${r.timeframe ?? '1m'}`;
/** Returned when nothing fires (frozen: shared, never to be pushed to). */
const NONE = Object.freeze([]) as unknown as AlertFiring[];

export class AlertEvaluator {
  private byTf = new Map<Timeframe, AlertRule[]>();
  private states: Record<string, RuleState> = {};
  private refs: Partial<Record<Timeframe, ClosedRef>> = {};

  /**
   * Without `rules` (a restore whose caller loads the rules afterwards), the restored rule
   * states wait for the first `setRules`, which keeps those of unchanged rules.
   */
  constructor(rules?: readonly AlertRule[], state?: AlertEvaluatorState) {
    if (state) {
      if (state.v !== 1 || typeof state.rules !== 'object' || typeof state.refs !== 'object')
        throw new ValidationError('alert evaluator state', 'unsupported version or shape');
      this.states = structuredClone(state.rules);
      this.refs = structuredClone(state.refs);
    }
    if (rules) this.setRules(rules);
  }

  /** Replaces the rule set; unchanged rules keep their state, edited ones start afresh. */
  setRules(rules: readonly AlertRule[]): void {
    const states: Record<string, RuleState> = {};
    this.byTf = new Map();
    for (const rule of rules) {
      const key = keyOf(rule);
      const old = this.states[rule.id];
      states[rule.id] =
        old && old.key === key ? old : { key, armed: true, fired: 0, lastFiredAt: null, done: false };
      const tf = rule.timeframe ?? '1m';
      const list = this.byTf.get(tf) ?? [];
      list.push(rule);
      this.byTf.set(tf, list);
    }
    this.states = states;
  }

  evaluate(ctx: AlertContext): AlertFiring[] {
    const { bar, closed, now } = ctx;
    const ref = this.refs[bar.tf];
    // Reference values of the previous closed bar.
    let prevClose: number | null = null;
    let prevHist: number | null = null;
    if (ref) {
      if (bar.t < ref.t || (bar.t === ref.t && !closed)) {
        // A revision of an older bar (not judged, but it may be the previous bar), or a stale
        // forming bar.
        if (closed) this.noteClosed(bar, ctx.indicators);
        return NONE;
      }
      if (bar.t === ref.t) {
        prevClose = ref.prevClose;
        prevHist = ref.prevHist;
      } else {
        prevClose = ref.close;
        prevHist = ref.hist;
      }
    }
    if (closed) this.noteClosed(bar, ctx.indicators);

    const rules = this.byTf.get(bar.tf);
    if (!rules) return NONE;
    let out: AlertFiring[] = NONE;
    for (const rule of rules) {
      if (!rule.enabled || rule.symbol !== bar.sym || rule.exchange !== bar.ex) continue;
      const st = this.states[rule.id]!;
      if (st.done) continue;
      const value = this.observe(rule, bar, ctx.indicators, prevClose, prevHist);
      if (value === null) continue;
      if (!this.holds(rule, value, prevHist)) {
        st.armed = true;
        continue;
      }
      if (!st.armed) continue;
      if (st.lastFiredAt !== null && now - st.lastFiredAt < rule.cooldownMs) continue;
      st.armed = false;
      st.fired += 1;
      st.lastFiredAt = now;
      if (rule.oneTime) st.done = true;
      if (out === NONE) out = [];
      out.push({
        id: `${rule.id}:${bar.tf}:${bar.t}:${st.fired}`,
        ruleId: rule.id,
        exchange: rule.exchange,
        symbol: rule.symbol,
        timeframe: bar.tf,
        condition: rule.condition,
        threshold: rule.threshold,
        value,
        barT: bar.t,
        closed,
        at: now,
        seq: st.fired,
        final: rule.oneTime,
      });
    }
    return out;
  }

  /**
   * Records a closed bar as the reference for the next ones without judging any rule (warm-up
   * from stored bars). `evaluate` does this itself for closed bars.
   */
  noteClosed(bar: Pick<Bar, 'tf' | 't' | 'c'>, indicators: IndicatorValues | null): void {
    const ref = this.refs[bar.tf];
    const hist = indicators?.macdHist ?? null;
    if (ref && bar.t === ref.t) {
      ref.close = bar.c;
      ref.hist = hist;
    } else if (ref && bar.t < ref.t && (ref.prevT === null || bar.t >= ref.prevT)) {
      // The bar before the last one, recomputed (or inserted) by a revision.
      ref.prevT = bar.t;
      ref.prevClose = bar.c;
      ref.prevHist = hist;
    } else if (!ref || bar.t > ref.t) {
      this.refs[bar.tf] = {
        t: bar.t,
        close: bar.c,
        hist,
        prevT: ref?.t ?? null,
        prevClose: ref?.close ?? null,
        prevHist: ref?.hist ?? null,
      };
    }
  }

  toState(): AlertEvaluatorState {
    return { v: 1, rules: structuredClone(this.states), refs: structuredClone(this.refs) };
  }

  /** The number a rule compares, or null when it cannot be evaluated yet. */
  private observe(
    rule: AlertRule,
    bar: Bar,
    ind: IndicatorValues | null,
    prevClose: number | null,
    prevHist: number | null,
  ): number | null {
    switch (rule.condition) {
      case 'PRICE_ABOVE':
      case 'PRICE_BELOW':
        return bar.c;
      case 'PCT_CHANGE':
        return prevClose ? (bar.c / prevClose - 1) * 100 : null;
      case 'RSI_ABOVE':
      case 'RSI_BELOW':
        return ind?.rsi ?? null;
      case 'MACD_CROSS_UP':
      case 'MACD_CROSS_DOWN':
        return prevHist === null ? null : (ind?.macdHist ?? null);
      case 'VOLUME_SPIKE':
        return ind?.volSma20 ? bar.vol / ind.volSma20 : null;
    }
  }

  private holds(rule: AlertRule, value: number, prevHist: number | null): boolean {
    const th = rule.threshold;
    switch (rule.condition) {
      case 'PRICE_ABOVE':
      case 'RSI_ABOVE':
        return value > th;
      case 'PRICE_BELOW':
      case 'RSI_BELOW':
        return value < th;
      case 'PCT_CHANGE':
        return Math.abs(value) >= th;
      case 'MACD_CROSS_UP':
        return prevHist! <= 0 && value > 0;
      case 'MACD_CROSS_DOWN':
        return prevHist! >= 0 && value < 0;
      case 'VOLUME_SPIKE':
        return value >= th;
    }
  }
}
