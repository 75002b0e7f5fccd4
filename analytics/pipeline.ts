/**
 * SymbolAnalytics: everything a symbol actor computes beside its bars, for one symbol. Quality
 * checks on trades; per timeframe an IndicatorSeries and a FeatureSeries; one AlertEvaluator.
 * Pure and synchronous; its whole state is one JSON value for the actor's snapshot.
 */
import type { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { type Bar, type SourceBar, TIMEFRAMES, type Timeframe, type Trade } from '../core/protocol/index.ts';
import { AlertEvaluator, type AlertEvaluatorState, type AlertFiring, type AlertRule } from './alerts.ts';
import { type FeatureRow, FeatureSeries } from './features.ts';
import { type BarPoint, IndicatorSeries, type IndicatorValues } from './indicators.ts';
import {
  QualityChecker,
  type QualityResult,
  type QualityState,
  type qualityConfigSchema,
  type TradeSource,
} from './quality.ts';
import type { SeriesStateJson } from './series-state.ts';

export interface SymbolAnalyticsOptions {
  exchange: string;
  symbol: string;
  /** Timeframes to analyse (default all). Bars of other timeframes are ignored. */
  timeframes?: readonly Timeframe[];
  /** Omitted when restoring before the rules are loaded: the rule states wait for `setRules`. */
  rules?: readonly AlertRule[];
  quality?: z.input<typeof qualityConfigSchema>;
  /**
   * Closed bars back a revision may reach, per timeframe. 1m must exceed the bar builder's
   * revision window (`bars.revisionWindow`, default 10): default 16. Higher timeframes only ever
   * revise their last closed bar: default 2.
   */
  revisionDepth?: Partial<Record<Timeframe, number>>;
  /** VWAP anchor (default: UTC day). */
  anchor?: (t: number) => number;
  isMarketOpen?: (t: number) => boolean;
  squeezeLookback?: number;
}

export interface ReplayedResult {
  bar: BarPoint;
  indicators: IndicatorValues;
  features: FeatureRow;
}

export interface ClosedBarResult {
  /** How the bar was applied; `too-old` and `ignored` (timeframe not analysed) change nothing. */
  status: 'append' | 'revise' | 'insert' | 'too-old' | 'ignored';
  indicators: IndicatorValues | null;
  features: FeatureRow | null;
  firings: AlertFiring[];
  /** Later bars whose values a revision or insertion changed, oldest first. */
  replayed: ReplayedResult[];
}

export interface FormingBarResult {
  indicators: IndicatorValues | null;
  features: FeatureRow | null;
  firings: AlertFiring[];
}

export interface SymbolAnalyticsState {
  v: 1;
  exchange: string;
  symbol: string;
  series: Partial<Record<Timeframe, { indicators: SeriesStateJson; features: SeriesStateJson }>>;
  alerts: AlertEvaluatorState;
  quality: QualityState;
}

interface Series {
  indicators: IndicatorSeries;
  features: FeatureSeries;
}

// Shared empty results (frozen: never to be pushed to).
const NO_FIRINGS = Object.freeze([]) as unknown as AlertFiring[];
const NO_REPLAYS = Object.freeze([]) as unknown as ReplayedResult[];

export class SymbolAnalytics {
  readonly exchange: string;
  readonly symbol: string;
  readonly quality: QualityChecker;
  readonly alerts: AlertEvaluator;
  private readonly series = new Map<Timeframe, Series>();

  constructor(opts: SymbolAnalyticsOptions, state?: SymbolAnalyticsState) {
    this.exchange = opts.exchange;
    this.symbol = opts.symbol;
    if (state && (state.v !== 1 || state.exchange !== opts.exchange || state.symbol !== opts.symbol))
      throw new ValidationError('analytics state', `not a v1 state of ${opts.exchange} ${opts.symbol}`);
    this.quality = new QualityChecker(opts.quality, state?.quality);
    this.alerts = new AlertEvaluator(opts.rules, state?.alerts);
    for (const tf of opts.timeframes ?? TIMEFRAMES) {
      const saved = state?.series[tf];
      const common = {
        anchor: opts.anchor,
        isMarketOpen: opts.isMarketOpen,
        squeezeLookback: opts.squeezeLookback,
      };
      const revisionDepth = opts.revisionDepth?.[tf] ?? (tf === '1m' ? 16 : 2);
      this.series.set(
        tf,
        saved
          ? {
              indicators: IndicatorSeries.fromState(saved.indicators, common),
              features: FeatureSeries.fromState(saved.features, common),
            }
          : {
              indicators: new IndicatorSeries({ ...common, revisionDepth }),
              features: new FeatureSeries({ ...common, revisionDepth }),
            },
      );
    }
  }

  static fromState(state: SymbolAnalyticsState, opts: SymbolAnalyticsOptions): SymbolAnalytics {
    return new SymbolAnalytics(opts, state);
  }

  /** Quality of one trade of the published message `message` (its stream sequence), stored at `now`. */
  checkTrade(trade: Trade, source: TradeSource, now: number, message: number): QualityResult {
    return this.quality.check(trade, source, now, message);
  }

  /** Quality of one source bar of the published message `message`, stored at `now`. */
  checkSourceBar(bar: SourceBar, now: number, message: number): QualityResult {
    return this.quality.checkBar(bar, now, message);
  }

  setRules(rules: readonly AlertRule[]): void {
    this.alerts.setRules(rules);
  }

  onClosedBar(bar: Bar, now: number): ClosedBarResult {
    const s = this.series.get(bar.tf);
    if (!s)
      return {
        status: 'ignored',
        indicators: null,
        features: null,
        firings: NO_FIRINGS,
        replayed: NO_REPLAYS,
      };
    const status = s.indicators.classify(bar.t);
    if (status === 'too-old')
      return { status, indicators: null, features: null, firings: NO_FIRINGS, replayed: NO_REPLAYS };
    const indicators = s.indicators.update(bar);
    const features = s.features.update(bar, indicators);
    let replayed = NO_REPLAYS;
    if (s.indicators.replayed.length > 0) {
      replayed = [];
      for (const r of s.indicators.replayed) {
        replayed.push({ bar: r.bar, indicators: r.values, features: s.features.update(r.bar, r.values) });
      }
    }
    const firings = this.alerts.evaluate({ bar, closed: true, indicators, now });
    for (const r of replayed) this.alerts.noteClosed({ tf: bar.tf, t: r.bar.t, c: r.bar.c }, r.indicators);
    return { status, indicators, features, firings, replayed };
  }

  onFormingBar(bar: Bar, now: number): FormingBarResult {
    const s = this.series.get(bar.tf);
    if (!s) return { indicators: null, features: null, firings: NO_FIRINGS };
    const indicators = s.indicators.preview(bar);
    if (!indicators) return { indicators: null, features: null, firings: NO_FIRINGS };
    return {
      indicators,
      features: s.features.preview(bar, indicators),
      firings: this.alerts.evaluate({ bar, closed: false, indicators, now }),
    };
  }

  /** Loads stored closed bars (ascending per timeframe) without judging alerts on them. */
  warm(barsByTf: Partial<Record<Timeframe, readonly Bar[]>>): void {
    for (const [tf, bars] of Object.entries(barsByTf) as [Timeframe, readonly Bar[]][]) {
      const s = this.series.get(tf);
      if (!s) continue;
      for (const bar of bars) {
        if (s.indicators.classify(bar.t) === 'too-old') continue;
        const v = s.indicators.update(bar);
        s.features.update(bar, v);
        for (const r of s.indicators.replayed) s.features.update(r.bar, r.values);
        this.alerts.noteClosed(bar, v);
      }
    }
  }

  toState(): SymbolAnalyticsState {
    const series: SymbolAnalyticsState['series'] = {};
    for (const [tf, s] of this.series)
      series[tf] = { indicators: s.indicators.toState(), features: s.features.toState() };
    return {
      v: 1,
      exchange: this.exchange,
      symbol: this.symbol,
      series,
      alerts: this.alerts.toState(),
      quality: this.quality.toState(),
    };
  }
}
