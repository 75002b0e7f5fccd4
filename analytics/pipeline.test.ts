import { describe, expect, it } from 'vitest';
import { type Bar, TIMEFRAMES, type Timeframe, type Trade } from '../core/protocol/index.ts';
import { alertRuleSchema } from './alerts.ts';
import { BarBuilder, barsFromTrades, emptyState } from './bar-builder.ts';
import { FeatureSeries } from './features.ts';
import { IndicatorSeries } from './indicators.ts';
import { type ClosedBarResult, SymbolAnalytics, type SymbolAnalyticsState } from './pipeline.ts';
import { prng, randomWalkBars, tradesForBars } from './synthetic.ts';

const MIN = 60_000;
const EX = 'sim';
const SYM = 'BTC/USDT';
const RULES = [
  alertRuleSchema.parse({ id: 'up', exchange: EX, symbol: SYM, condition: 'PRICE_ABOVE', threshold: 30_500 }),
  alertRuleSchema.parse({
    id: 'rsi',
    exchange: EX,
    symbol: SYM,
    condition: 'RSI_BELOW',
    threshold: 30,
    timeframe: '5m',
  }),
];

/** Trades of a 1m random walk, some arriving late (up to 8 minutes) so bars get revised. */
function tradeStream(): Trade[] {
  const bars = randomWalkBars({ seed: 31, count: 2400, stepMs: MIN });
  const trades = tradesForBars(bars, 6, 32, MIN);
  const rand = prng(33);
  const arrival = trades.map((t) => ({ t, at: t.ts + (rand() < 0.03 ? rand() * 8 * MIN : 0) }));
  return arrival.sort((a, b) => a.at - b.at).map((a) => a.t);
}

/** Feeds trades in batches through the bar builder and the analytics; latest result per bar. */
function drive(trades: Trade[], restoreEvery = 0) {
  const builder = new BarBuilder(emptyState(EX, SYM), { graceMs: 1000, revisionWindow: 10 });
  let analytics = new SymbolAnalytics({ exchange: EX, symbol: SYM, rules: RULES });
  const latest = new Map<string, ClosedBarResult['indicators']>();
  const finalBars = new Map<string, Bar>();
  const features = new Map<string, unknown>();
  const statuses: Record<string, number> = {};
  const accepted: Trade[] = [];
  const firings: string[] = [];
  let batches = 0;
  for (let i = 0; i < trades.length; i += 17) {
    const batch = trades.slice(i, i + 17);
    const now = batch.at(-1)!.ts + 500;
    const good = batch.filter((t) => analytics.checkTrade(t, 'replay', now, i).ok);
    const step = builder.applyTrades(good);
    const late = new Set(step.tooLate.map((t) => t.id));
    accepted.push(...good.filter((t) => !late.has(t.id)));
    for (const bar of step.closed) {
      finalBars.set(`${bar.tf}:${bar.t}`, bar);
      const r = analytics.onClosedBar(bar, now);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      firings.push(...r.firings.map((f) => f.id));
      latest.set(`${bar.tf}:${bar.t}`, r.indicators);
      features.set(`${bar.tf}:${bar.t}`, r.features);
      for (const x of r.replayed) {
        latest.set(`${bar.tf}:${x.bar.t}`, x.indicators);
        features.set(`${bar.tf}:${x.bar.t}`, x.features);
      }
    }
    for (const bar of builder.formingBars())
      firings.push(...analytics.onFormingBar(bar, now).firings.map((f) => f.id));
    if (restoreEvery && ++batches % restoreEvery === 0) {
      const json = JSON.stringify(analytics.toState());
      analytics = SymbolAnalytics.fromState(JSON.parse(json) as SymbolAnalyticsState, {
        exchange: EX,
        symbol: SYM,
        rules: RULES,
      });
    }
  }
  return { latest, features, finalBars, statuses, accepted, firings, analytics };
}

const TRADES = tradeStream();
const RUN = drive(TRADES);

describe('SymbolAnalytics', () => {
  it('ends with the indicators and features of the final bars of every timeframe, revisions included', () => {
    expect(RUN.statuses.revise).toBeGreaterThan(20);
    expect(RUN.statuses.insert).toBeGreaterThan(0); // a late trade into a bucket that closed empty
    for (const tf of TIMEFRAMES) {
      // The last revision of every closed bar the builder published, in time order; the same
      // buckets as the bars computed from the accepted trades (all but the still-forming one).
      const closed = [...RUN.finalBars.values()].filter((b) => b.tf === tf).sort((a, b) => a.t - b.t);
      const final = barsFromTrades(EX, SYM, tf, RUN.accepted);
      expect(closed.map((b) => b.t)).toEqual(final.slice(0, closed.length).map((b) => b.t));
      expect(closed.length).toBeGreaterThanOrEqual(final.length - 1);
      const series = new IndicatorSeries();
      const feats = new FeatureSeries();
      const want = closed.map((b) => {
        const v = series.update(b);
        return { v, f: feats.update(b, v) };
      });
      closed.forEach((b, i) => {
        expect(RUN.latest.get(`${tf}:${b.t}`), `${tf} ${i}`).toEqual(want[i]!.v);
        expect(RUN.features.get(`${tf}:${b.t}`), `${tf} ${i}`).toEqual(want[i]!.f);
      });
    }
  });

  it('continues exactly after JSON snapshots of its whole state', () => {
    const restored = drive(TRADES, 7);
    expect(restored.firings).toEqual(RUN.firings);
    expect([...restored.latest.entries()]).toEqual([...RUN.latest.entries()]);
    expect(restored.analytics.toState()).toEqual(RUN.analytics.toState());
    expect(RUN.firings.length).toBeGreaterThan(2);
    expect(new Set(RUN.firings).size).toBe(RUN.firings.length); // ids are unique
  });

  it('keeps its snapshot reasonably small', () => {
    const bytes = JSON.stringify(RUN.analytics.toState()).length;
    expect(bytes).toBeLessThan(150_000);
  });

  it('previews forming bars and warms from stored bars without firing alerts', () => {
    const bars = randomWalkBars({ seed: 34, count: 300, stepMs: MIN });
    const asBar = (b: (typeof bars)[number], tf: Timeframe = '1m'): Bar => ({
      v: 1,
      ex: EX,
      sym: SYM,
      tf,
      ...b,
      n: 1,
      closed: true,
      rev: 0,
      gap: 0,
      ft: b.t,
      lt: b.t,
    });
    const a = new SymbolAnalytics({ exchange: EX, symbol: SYM, rules: RULES, timeframes: ['1m'] });
    a.warm({ '1m': bars.slice(0, 299).map((b) => asBar(b)), '5m': [asBar(bars[0]!, '5m')] });
    const forming = { ...asBar(bars[299]!), closed: false, c: 40_000, h: 40_000 };
    const p = a.onFormingBar(forming, 0);
    expect(p.firings.map((f) => f.ruleId)).toEqual(['up']);
    const direct = new IndicatorSeries();
    direct.warm(bars.slice(0, 299));
    expect(p.indicators).toEqual(direct.preview(forming));
    expect(a.onFormingBar({ ...forming, c: 40_001 }, 1).firings).toEqual([]);
    const closed = a.onClosedBar({ ...forming, closed: true }, 2);
    expect(closed).toMatchObject({ status: 'append', firings: [] });
    expect(closed.indicators).toEqual(p.indicators);
    expect(a.onClosedBar(asBar(bars[0]!, '1h'), 3).status).toBe('ignored');
    expect(a.onClosedBar(asBar(bars[10]!), 3).status).toBe('too-old');
  });

  // Regression: restored without rules (the symbol actor loads them after the restore), the
  // evaluator dropped every rule's state, so a rule that had fired fired again after a restart.
  it('keeps the alert rules’ state through a restore that loads the rules afterwards', () => {
    const saved = JSON.parse(JSON.stringify(RUN.analytics.toState())) as SymbolAnalyticsState;
    expect(Object.values(saved.alerts.rules).some((r) => r.fired > 0)).toBe(true);
    const restored = SymbolAnalytics.fromState(saved, { exchange: EX, symbol: SYM });
    restored.setRules(RULES);
    expect(restored.toState().alerts).toEqual(saved.alerts);
  });

  it('refuses a snapshot of another symbol', () => {
    const state = RUN.analytics.toState();
    expect(() => SymbolAnalytics.fromState(state, { exchange: EX, symbol: 'ETH/USDT' })).toThrow(
      /analytics state/,
    );
  });
});
