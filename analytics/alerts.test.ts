import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Bar } from '../core/protocol/index.ts';
import {
  AlertEvaluator,
  type AlertEvaluatorState,
  type AlertFiring,
  type AlertRule,
  alertRuleSchema,
} from './alerts.ts';
import { FeatureSeries } from './features.ts';
import { IndicatorSeries, type IndicatorValues } from './indicators.ts';
import { randomWalkBars } from './synthetic.ts';

const T0 = Date.UTC(2024, 0, 1);
const MIN = 60_000;

const rule = (r: Partial<AlertRule> & Pick<AlertRule, 'id' | 'condition'>): AlertRule =>
  alertRuleSchema.parse({ exchange: 'sim', symbol: 'BTC/USDT', threshold: 100, ...r });

const bar = (i: number, c: number, extra: Partial<Bar> = {}): Bar => ({
  v: 1,
  ex: 'sim',
  sym: 'BTC/USDT',
  tf: '1m',
  t: T0 + i * MIN,
  o: c,
  h: c,
  l: c,
  c,
  vol: 1,
  n: 1,
  closed: true,
  rev: 0,
  gap: 0,
  ft: T0 + i * MIN,
  lt: T0 + i * MIN,
  ...extra,
});

const ind = (v: Partial<IndicatorValues>): IndicatorValues => ({ ...NULLS, ...v });
const NULLS = Object.fromEntries(
  Object.keys(new IndicatorSeries().update(randomWalkBars({ count: 1 })[0]!)).map((k) => [k, null]),
) as unknown as IndicatorValues;

/** Closes one bar per step (now = bar end); returns the bar indices that fired. */
function runCloses(
  ev: AlertEvaluator,
  closes: number[],
  opts: { from?: number; indicators?: Partial<IndicatorValues>[] } = {},
) {
  const fired: number[] = [];
  closes.forEach((c, k) => {
    const i = (opts.from ?? 0) + k;
    const f = ev.evaluate({
      bar: bar(i, c),
      closed: true,
      indicators: ind(opts.indicators?.[k] ?? {}),
      now: T0 + (i + 1) * MIN,
    });
    if (f.length) fired.push(i);
  });
  return fired;
}

describe('alertRuleSchema', () => {
  it('has defaults and checks thresholds per condition', () => {
    const r = alertRuleSchema.parse({ id: 'a', exchange: 'x', symbol: 'y', condition: 'MACD_CROSS_UP' });
    expect(r).toMatchObject({ threshold: 0, cooldownMs: 0, oneTime: false, enabled: true });
    expect(r.timeframe).toBeUndefined();
    const bad = (x: object) =>
      alertRuleSchema.safeParse({ id: 'a', exchange: 'x', symbol: 'y', ...x }).success;
    expect(bad({ condition: 'RSI_ABOVE', threshold: 120 })).toBe(false);
    expect(bad({ condition: 'PCT_CHANGE', threshold: 0 })).toBe(false);
    expect(bad({ condition: 'VOLUME_SPIKE', threshold: -1 })).toBe(false);
    expect(bad({ condition: 'PRICE_ABOVE', threshold: 1, extra: 1 })).toBe(false);
    expect(bad({ condition: 'PRICE_ABOVE', threshold: 1, timeframe: '2m' })).toBe(false);
    expect(bad({ condition: 'PRICE_BELOW', threshold: 1, timeframe: '4h' })).toBe(true);
  });
});

describe('AlertEvaluator', () => {
  it('fires once per crossing: staying above does not refire, crossing again does', () => {
    const ev = new AlertEvaluator([rule({ id: 'up', condition: 'PRICE_ABOVE' })]);
    expect(runCloses(ev, [99, 101, 102, 103, 100, 99, 101, 105])).toEqual([1, 6]);
  });

  it('fires on the forming bar and not again when that bar closes above', () => {
    const ev = new AlertEvaluator([rule({ id: 'up', condition: 'PRICE_ABOVE' })]);
    const out: AlertFiring[] = [];
    out.push(...ev.evaluate({ bar: bar(0, 99), closed: true, indicators: null, now: T0 + MIN }));
    for (const c of [99.5, 100.5, 101, 100.7])
      out.push(
        ...ev.evaluate({
          bar: bar(1, c, { closed: false }),
          closed: false,
          indicators: null,
          now: T0 + MIN + 1000,
        }),
      );
    out.push(...ev.evaluate({ bar: bar(1, 101), closed: true, indicators: null, now: T0 + 2 * MIN }));
    expect(out.map((f) => [f.id, f.closed, f.value])).toEqual([['up:1m:' + (T0 + MIN) + ':1', false, 100.5]]);
  });

  it('waits out the cooldown, then fires if the condition still holds', () => {
    const ev = new AlertEvaluator([rule({ id: 'cd', condition: 'PRICE_BELOW', cooldownMs: 3 * MIN })]);
    // Crosses below at 1, back up at 2, below again at 3 (cooldown until 4): fires at 4.
    expect(runCloses(ev, [101, 99, 101, 99, 98, 97, 101, 99])).toEqual([1, 4, 7]);
  });

  it('a oneTime rule fires once and is then done', () => {
    const ev = new AlertEvaluator([rule({ id: 'once', condition: 'PRICE_ABOVE', oneTime: true })]);
    const all = [99, 101, 99, 101, 99, 101].flatMap((c, i) =>
      ev.evaluate({ bar: bar(i, c), closed: true, indicators: null, now: T0 + i * MIN }),
    );
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ final: true, seq: 1, barT: T0 + MIN });
    expect(ev.toState().rules.once!.done).toBe(true);
  });

  it('after a restore from any point it neither refires nor misses a firing', () => {
    const rules = [
      rule({ id: 'up', condition: 'PRICE_ABOVE', cooldownMs: 2 * MIN }),
      rule({ id: 'pct', condition: 'PCT_CHANGE', threshold: 1.5 }),
    ];
    const closes = [99, 101, 102, 99, 101, 103, 99, 98, 102, 101, 99, 103];
    const straight = new AlertEvaluator(rules);
    const want = closes.flatMap((c, i) =>
      straight.evaluate({ bar: bar(i, c), closed: true, indicators: null, now: T0 + i * MIN }),
    );
    expect(want.length).toBeGreaterThan(5);
    let ev = new AlertEvaluator(rules);
    const got: AlertFiring[] = [];
    closes.forEach((c, i) => {
      ev = new AlertEvaluator(rules, JSON.parse(JSON.stringify(ev.toState())) as AlertEvaluatorState);
      got.push(...ev.evaluate({ bar: bar(i, c), closed: true, indicators: null, now: T0 + i * MIN }));
      // A restarted actor re-evaluating the bar it already judged: nothing new.
      const again = new AlertEvaluator(
        rules,
        JSON.parse(JSON.stringify(ev.toState())) as AlertEvaluatorState,
      );
      expect(again.evaluate({ bar: bar(i, c), closed: true, indicators: null, now: T0 + i * MIN })).toEqual(
        [],
      );
    });
    expect(got).toEqual(want);
    // Replaying from a state saved before a firing yields the same firing id (storage dedupes).
    const before = new AlertEvaluator(rules);
    before.evaluate({ bar: bar(0, 99), closed: true, indicators: null, now: T0 });
    const saved = JSON.stringify(before.toState());
    const first = before.evaluate({ bar: bar(1, 101), closed: true, indicators: null, now: T0 + MIN });
    const replay = new AlertEvaluator(rules, JSON.parse(saved)).evaluate({
      bar: bar(1, 101),
      closed: true,
      indicators: null,
      now: T0 + MIN,
    });
    expect(replay.map((f) => f.id)).toEqual(first.map((f) => f.id));
  });

  it('detects MACD crossings against the previous closed bar', () => {
    const ev = new AlertEvaluator([
      rule({ id: 'xu', condition: 'MACD_CROSS_UP' }),
      rule({ id: 'xd', condition: 'MACD_CROSS_DOWN' }),
    ]);
    const hist = [-1, -0.5, 0.2, 0.3, -0.1, 0, 0.4, 0.5];
    const fired = hist.map((h, i) =>
      ev
        .evaluate({ bar: bar(i, 100), closed: true, indicators: ind({ macdHist: h }), now: T0 + i * MIN })
        .map((f) => f.ruleId),
    );
    expect(fired).toEqual([[], [], ['xu'], [], ['xd'], [], ['xu'], []]);
  });

  it('matches the MACD cross feature on a real series, forming bars included', () => {
    const bars = randomWalkBars({ seed: 21, count: 1500, stepMs: MIN });
    const series = new IndicatorSeries();
    const features = new FeatureSeries();
    const ev = new AlertEvaluator([
      rule({ id: 'xu', condition: 'MACD_CROSS_UP' }),
      rule({ id: 'xd', condition: 'MACD_CROSS_DOWN' }),
    ]);
    let up = 0;
    let down = 0;
    let fired = 0;
    bars.forEach((b, i) => {
      const full: Bar = { ...bar(0, b.c), ...b };
      // A forming version first (half the move), then the close.
      const forming = { ...full, c: (b.o + b.c) / 2, closed: false };
      fired += ev.evaluate({
        bar: forming,
        closed: false,
        indicators: series.preview(forming),
        now: T0 + i,
      }).length;
      const v = series.update(full);
      const row = features.update(full, v);
      if (row.macdCross === 1) up++;
      if (row.macdCross === -1) down++;
      const closing = ev.evaluate({ bar: full, closed: true, indicators: v, now: T0 + i });
      fired += closing.length;
    });
    // Each closed-bar crossing fires exactly once (on the forming bar or at the close); forming
    // crossings that undo themselves before the close may fire in addition.
    expect(up + down).toBeGreaterThan(50);
    expect(fired).toBeGreaterThanOrEqual(up + down);
    const closedOnly = new AlertEvaluator([rule({ id: 'xu', condition: 'MACD_CROSS_UP' })]);
    const s2 = new IndicatorSeries();
    const n = bars.filter(
      (b) =>
        closedOnly.evaluate({ bar: { ...bar(0, b.c), ...b }, closed: true, indicators: s2.update(b), now: 0 })
          .length > 0,
    ).length;
    expect(n).toBe(up);
  });

  it('judges PCT_CHANGE against the previous close, also for a revised last bar', () => {
    const ev = new AlertEvaluator([rule({ id: 'p', condition: 'PCT_CHANGE', threshold: 2 })]);
    const e = (i: number, c: number, closed = true) =>
      ev.evaluate({ bar: bar(i, c, { closed }), closed, indicators: null, now: T0 + i * MIN });
    expect(e(0, 100)).toEqual([]); // no previous close
    expect(e(1, 101)).toEqual([]);
    expect(e(2, 103.1, false)[0]!.value).toBeCloseTo(2.0792, 3); // forming vs the close of bar 1
    expect(e(2, 102)).toEqual([]); // re-armed: the closed bar is only +0.99 %
    expect(e(2, 98.9)[0]!.value).toBeCloseTo(-2.0792, 3); // revision of bar 2: vs bar 1 still
    expect(e(1, 90)).toEqual([]); // revision of an older bar: not evaluated
    // …but it is the reference of bar 2 now: revising bar 2 again compares with 90.
    expect(e(2, 91)).toEqual([]); // +1.1 % vs 90 (it would be −9.9 % vs 101): re-armed
    expect(e(2, 98.9)[0]!.value).toBeCloseTo(9.8889, 3);
  });

  it('fires on a volume spike relative to the volume SMA, and not without one', () => {
    const ev = new AlertEvaluator([rule({ id: 'v', condition: 'VOLUME_SPIKE', threshold: 3 })]);
    const e = (i: number, vol: number, volSma20: number | null) =>
      ev.evaluate({
        bar: bar(i, 100, { vol }),
        closed: true,
        indicators: ind({ volSma20 }),
        now: T0 + i * MIN,
      }).length;
    expect([e(0, 50, null), e(1, 29, 10), e(2, 30, 10), e(3, 31, 10), e(4, 1, 10), e(5, 40, 10)]).toEqual([
      0, 0, 1, 0, 0, 1,
    ]);
  });

  it('leaves a rule as it was while its indicator is still null', () => {
    const ev = new AlertEvaluator([rule({ id: 'r', condition: 'RSI_ABOVE', threshold: 70 })]);
    const rsi = [75, null, 80, 60, null, 71];
    expect(
      runCloses(
        ev,
        rsi.map(() => 100),
        { indicators: rsi.map((r) => ({ rsi: r })) },
      ),
    ).toEqual([0, 5]);
  });

  it('keeps the state of unchanged rules when the rule set changes and resets edited ones', () => {
    const a = rule({ id: 'a', condition: 'PRICE_ABOVE' });
    const ev = new AlertEvaluator([a, rule({ id: 'b', condition: 'PRICE_ABOVE' })]);
    expect(ev.evaluate({ bar: bar(0, 101), closed: true, indicators: null, now: 0 })).toHaveLength(2);
    ev.setRules([
      a,
      rule({ id: 'b', condition: 'PRICE_ABOVE', threshold: 100.5 }),
      rule({ id: 'c', condition: 'PRICE_ABOVE', enabled: false }),
    ]);
    expect(
      ev.evaluate({ bar: bar(1, 102), closed: true, indicators: null, now: 0 }).map((f) => f.ruleId),
    ).toEqual(['b']);
    expect(Object.keys(ev.toState().rules).sort()).toEqual(['a', 'b', 'c']);
  });

  it("only judges rules of its bar's timeframe and symbol", () => {
    const ev = new AlertEvaluator([
      rule({ id: 'h', condition: 'PRICE_ABOVE', timeframe: '1h' }),
      rule({ id: 'other', condition: 'PRICE_ABOVE', symbol: 'ETH/USDT' }),
    ]);
    expect(ev.evaluate({ bar: bar(0, 101), closed: true, indicators: null, now: 0 })).toEqual([]);
    expect(
      ev
        .evaluate({ bar: bar(0, 101, { tf: '1h' }), closed: true, indicators: null, now: 0 })
        .map((f) => f.id),
    ).toEqual([`h:1h:${T0}:1`]);
  });

  it('fires exactly at the false→true transitions of any path (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 95, max: 105 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 199 }),
        (closes, cut) => {
          const want = closes.flatMap((c, i) => (c > 100 && (i === 0 || closes[i - 1]! <= 100) ? [i] : []));
          let ev = new AlertEvaluator([rule({ id: 'up', condition: 'PRICE_ABOVE' })]);
          const first = runCloses(ev, closes.slice(0, cut));
          ev = new AlertEvaluator(
            [rule({ id: 'up', condition: 'PRICE_ABOVE' })],
            JSON.parse(JSON.stringify(ev.toState())),
          );
          const rest = runCloses(ev, closes.slice(cut), { from: cut });
          expect([...first, ...rest]).toEqual(want);
        },
      ),
      { numRuns: 200 },
    );
  });
});
