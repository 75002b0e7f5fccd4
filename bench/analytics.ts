/**
 * Cost of the per-symbol analytics per closed bar: quality checks on the bar's trades (50 per
 * bar), all indicators, features and 10 alert rules, on one timeframe after warm-up; against the
 * naive approach of recomputing the same indicators per closed bar with technicalindicators'
 * batch `.calculate` over the last 200 bars.
 *
 *   npx tsx bench/analytics.ts        prints a small table
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { ADX, ATR, BollingerBands, EMA, MACD, RSI, SMA, Stochastic, VWAP } from 'technicalindicators';
import { type AlertRule, alertRuleSchema } from '../analytics/alerts.ts';
import { IndicatorSeries } from '../analytics/indicators.ts';
import { SymbolAnalytics } from '../analytics/pipeline.ts';
import { QualityChecker } from '../analytics/quality.ts';
import { prng, randomWalkBars } from '../analytics/synthetic.ts';
import type { Bar, Trade } from '../core/protocol/index.ts';

const TRADES_PER_BAR = 50;
const WARM_BARS = 3000;
const MEASURED_BARS = 20_000;
const NAIVE_BARS = 400;
/** Measurements are split into rounds; the median round is reported (the machine is shared). */
const ROUNDS = 5;
const NAIVE_WINDOW = 200;
const EX = 'bench';
const SYM = 'BTC/USDT';

export interface AnalyticsBenchDetail {
  perClosedBarUs: number;
  naiveUs: number;
  speedup: number;
  qualityNsPerTrade: number;
  /** Indicators alone (IndicatorSeries.update), µs per bar. */
  indicatorsUs: number;
  /** onClosedBar: indicators + features + alerts, µs per bar. */
  analyticsUs: number;
  stateBytes: number;
}

function rules(): AlertRule[] {
  const r = (id: string, condition: AlertRule['condition'], threshold: number) =>
    alertRuleSchema.parse({ id, exchange: EX, symbol: SYM, condition, threshold, cooldownMs: 60_000 });
  return [
    r('p-above', 'PRICE_ABOVE', 31_000),
    r('p-below', 'PRICE_BELOW', 29_000),
    r('p-above-2', 'PRICE_ABOVE', 30_200),
    r('pct', 'PCT_CHANGE', 0.5),
    r('rsi-hi', 'RSI_ABOVE', 70),
    r('rsi-lo', 'RSI_BELOW', 30),
    r('x-up', 'MACD_CROSS_UP', 0),
    r('x-down', 'MACD_CROSS_DOWN', 0),
    r('vol', 'VOLUME_SPIKE', 3),
    r('vol-2', 'VOLUME_SPIKE', 5),
  ];
}

function toBars(count: number): Bar[] {
  return randomWalkBars({ seed: 99, count, stepMs: 60_000, flatChance: 0.002 }).map((b) => ({
    v: 1,
    ex: EX,
    sym: SYM,
    tf: '1m',
    ...b,
    n: TRADES_PER_BAR,
    closed: true,
    rev: 0,
    gap: 0,
    ft: b.t,
    lt: b.t + 59_000,
  }));
}

/** Checks the bar's trades (one reused object: the checker keeps none) and returns rejections. */
function checkTrades(q: QualityChecker | SymbolAnalytics, bar: Bar, trade: Trade, u: Float64Array): number {
  let rejected = 0;
  const span = bar.h - bar.l;
  for (let k = 0; k < TRADES_PER_BAR; k++) {
    trade.ts = bar.t + k * 1000;
    trade.px = k === 0 ? bar.o : k === TRADES_PER_BAR - 1 ? bar.c : bar.l + span * u[k]!;
    trade.qty = (bar.vol / TRADES_PER_BAR) * (0.5 + u[(k + 7) % TRADES_PER_BAR]!);
    const r =
      q instanceof QualityChecker
        ? q.check(trade, 'live', trade.ts + 50, bar.t)
        : q.checkTrade(trade, 'live', trade.ts + 50, bar.t);
    if (!r.ok) rejected++;
  }
  return rejected;
}

function naivePerBar(bars: readonly Bar[], i: number): number {
  const w = bars.slice(i + 1 - NAIVE_WINDOW, i + 1);
  const close = w.map((b) => b.c);
  const high = w.map((b) => b.h);
  const low = w.map((b) => b.l);
  const volume = w.map((b) => b.vol);
  let sink = 0;
  sink += RSI.calculate({ period: 14, values: close }).length;
  sink += MACD.calculate({
    values: close,
    fastPeriod: 12,
    slowPeriod: 26,
    signalPeriod: 9,
    SimpleMAOscillator: false,
    SimpleMASignal: false,
  }).length;
  sink += BollingerBands.calculate({ period: 20, stdDev: 2, values: close }).length;
  for (const period of [20, 50, 100, 200]) sink += SMA.calculate({ period, values: close }).length;
  for (const period of [12, 26, 50]) sink += EMA.calculate({ period, values: close }).length;
  sink += VWAP.calculate({ high, low, close, volume }).length;
  sink += Stochastic.calculate({ high, low, close, period: 14, signalPeriod: 3 }).length;
  sink += ATR.calculate({ high, low, close, period: 14 }).length;
  sink += ADX.calculate({ high, low, close, period: 14 }).length;
  sink += SMA.calculate({ period: 20, values: volume }).length;
  return sink;
}

/** Runs `body(from, to)` over consecutive slices of `total` items; median time per item (ms). */
function medianPerItem(
  from: number,
  total: number,
  rounds: number,
  body: (a: number, b: number) => void,
): number {
  const size = Math.floor(total / rounds);
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = from + r * size;
    const t0 = performance.now();
    body(a, a + size);
    per.push((performance.now() - t0) / size);
  }
  per.sort((x, y) => x - y);
  return per[Math.floor(rounds / 2)]!;
}

export async function measureAnalytics(): Promise<AnalyticsBenchDetail> {
  const bars = toBars(WARM_BARS + MEASURED_BARS);
  const rand = prng(5);
  const u = Float64Array.from({ length: TRADES_PER_BAR }, () => rand());
  const trade: Trade = { id: 'x', ts: 0, px: 0, qty: 0 };
  let sink = 0;

  // Whole path per closed bar: quality on its trades + indicators + features + alerts.
  const analytics = new SymbolAnalytics({ exchange: EX, symbol: SYM, timeframes: ['1m'], rules: rules() });
  const whole = (a: number, b: number) => {
    for (let i = a; i < b; i++) {
      sink += checkTrades(analytics, bars[i]!, trade, u);
      sink += analytics.onClosedBar(bars[i]!, bars[i]!.t + 60_000).firings.length;
    }
  };
  whole(0, WARM_BARS);
  const perClosedBarUs = medianPerItem(WARM_BARS, MEASURED_BARS, ROUNDS, whole) * 1000;
  const stateBytes = JSON.stringify(analytics.toState()).length;

  // The parts on their own.
  const q = new QualityChecker();
  const quality = (a: number, b: number) => {
    for (let i = a; i < b; i++) sink += checkTrades(q, bars[i]!, trade, u);
  };
  quality(0, WARM_BARS);
  const qualityNsPerTrade = (medianPerItem(WARM_BARS, MEASURED_BARS, ROUNDS, quality) * 1e6) / TRADES_PER_BAR;

  const only = new SymbolAnalytics({ exchange: EX, symbol: SYM, timeframes: ['1m'], rules: rules() });
  const closedOnly = (a: number, b: number) => {
    for (let i = a; i < b; i++) sink += only.onClosedBar(bars[i]!, bars[i]!.t + 60_000).firings.length;
  };
  closedOnly(0, WARM_BARS);
  const analyticsUs = medianPerItem(WARM_BARS, MEASURED_BARS, ROUNDS, closedOnly) * 1000;

  const ind = new IndicatorSeries();
  const indicators = (a: number, b: number) => {
    for (let i = a; i < b; i++) sink += ind.update(bars[i]!).t;
  };
  indicators(0, WARM_BARS);
  const indicatorsUs = medianPerItem(WARM_BARS, MEASURED_BARS, ROUNDS, indicators) * 1000;

  // Naive: batch recomputation over the last 200 bars per closed bar.
  const naive = (a: number, b: number) => {
    for (let i = a; i < b; i++) sink += naivePerBar(bars, i);
  };
  naive(NAIVE_WINDOW, NAIVE_WINDOW + 50);
  const naiveUs = medianPerItem(WARM_BARS, NAIVE_BARS, ROUNDS, naive) * 1000;

  if (sink === -1) process.stderr.write(''); // keeps the work observable
  return {
    perClosedBarUs,
    naiveUs,
    speedup: naiveUs / perClosedBarUs,
    qualityNsPerTrade,
    indicatorsUs,
    analyticsUs,
    stateBytes,
  };
}

export async function runAnalyticsBench(): Promise<AnalyticsBenchDetail> {
  return measureAnalytics();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await measureAnalytics();
  const rows: [string, string, string][] = [
    [
      'per closed bar: 50 quality checks + indicators + features + 10 alerts',
      `${r.perClosedBarUs.toFixed(2)} µs`,
      '≤ 20 µs',
    ],
    ['  quality check, per trade', `${r.qualityNsPerTrade.toFixed(0)} ns`, ''],
    ['  indicators + features + alerts (onClosedBar)', `${r.analyticsUs.toFixed(2)} µs`, ''],
    ['  indicators alone', `${r.indicatorsUs.toFixed(2)} µs`, ''],
    ['naive: technicalindicators .calculate over 200 bars', `${r.naiveUs.toFixed(0)} µs`, ''],
    ['speedup (naive indicators / our whole path)', `${r.speedup.toFixed(0)}x`, ''],
    ['snapshot of one 1m series (JSON)', `${(r.stateBytes / 1024).toFixed(1)} KiB`, ''],
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  process.stdout.write(`${'metric'.padEnd(w)}  ${'value'.padStart(12)}  target\n`);
  for (const [m, v, t] of rows) process.stdout.write(`${m.padEnd(w)}  ${v.padStart(12)}  ${t}\n`);
}
