// Pure transforms between GraphQL candles and lightweight-charts points, and the rules for
// folding a live candle into a loaded series. No DOM, no chart instance: unit-tested in node.
import type { CandlestickData, HistogramData, UTCTimestamp } from 'lightweight-charts';
import type {
  CandleFieldsFragment as Candle,
  LiveCandlesSubscriptionVariables as SeriesVariables,
} from '../graphql/generated/operations';

/** What the live subscription tells the series, keyed by `type` (forming and closed never mix). */
export type CandleStreamMessage =
  | { type: 'forming'; candle: Candle }
  | { type: 'closed'; candle: Candle }
  | { type: 'error'; error: Error }
  | { type: 'complete' };

export function toStreamMessage(candle: Candle): CandleStreamMessage {
  return candle.closed ? { type: 'closed', candle } : { type: 'forming', candle };
}

/**
 * Result of merging one live candle into a series. `bars` is the new series (a fresh array,
 * the input is never mutated); `index` is where the candle landed.
 * - append: newer than the last bar.
 * - replace: same open time as an existing bar (the forming last bar, or a closed revision).
 * - insert: a closed bar that falls into a hole inside the loaded window; the chart cannot
 *   insert in the middle incrementally, so it must reload the whole series.
 * - ignore: stale or foreign; `reason` says which.
 */
export type MergeResult =
  | { type: 'append' | 'replace' | 'insert'; bars: Candle[]; index: number }
  | { type: 'ignore'; reason: IgnoreReason };

export type IgnoreReason = 'other-series' | 'stale-forming' | 'older-revision' | 'before-window';

export const DARK_CHART_COLOURS = {
  background: '#0f141a',
  text: '#c3ccd6',
  grid: '#1c242d',
  border: '#2a3440',
  up: '#26a69a',
  down: '#ef5350',
  upVolume: 'rgba(38, 166, 154, 0.5)',
  downVolume: 'rgba(239, 83, 80, 0.5)',
  crosshair: '#5d6b7a',
} as const;

/** lightweight-charts wants UTC seconds; the gateway sends epoch milliseconds. */
export function toChartTime(timeMs: number): UTCTimestamp {
  return Math.floor(timeMs / 1000) as UTCTimestamp;
}

export function toBar(candle: Candle): CandlestickData<UTCTimestamp> {
  return {
    time: toChartTime(candle.timeMs),
    open: candle.open,
    high: candle.high,
    low: candle.low,
    close: candle.close,
  };
}

/** A flat bar counts as "up", the usual exchange convention. */
export function isUp(candle: Pick<Candle, 'open' | 'close'>): boolean {
  return candle.close >= candle.open;
}

export function toVolumePoint(candle: Candle): HistogramData<UTCTimestamp> {
  return {
    time: toChartTime(candle.timeMs),
    value: candle.volume,
    color: isUp(candle) ? DARK_CHART_COLOURS.upVolume : DARK_CHART_COLOURS.downVolume,
  };
}

export function belongsTo(candle: Candle, series: SeriesVariables): boolean {
  return (
    candle.exchange === series.exchange &&
    candle.symbol === series.symbol &&
    candle.timeframe === series.timeframe
  );
}

/** Index of the bar opening at `timeMs`, or the (negative) insertion point as `-(i + 1)`. */
export function findBar(bars: readonly Candle[], timeMs: number): number {
  let lo = 0;
  let hi = bars.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const t = bars[mid]!.timeMs;
    if (t === timeMs) return mid;
    if (t < timeMs) lo = mid + 1;
    else hi = mid - 1;
  }
  return -(lo + 1);
}

/**
 * Folds a live candle into `bars` (ascending by time).
 *
 * Forming and closed bars come from different NATS subjects, so they may interleave: the
 * closed version of bar T can arrive after the first forming update of T+1 (grace for late
 * trades). Hence the rules:
 * - newer than the last bar: append;
 * - same time as an existing bar: a closed candle replaces it unless the existing bar is a
 *   closed one with a higher revision; a forming candle only replaces a forming bar (a
 *   forming update for a bar we already hold closed is stale);
 * - older than the last bar with no bar at that time: a closed candle inside the window fills
 *   the hole (insert), anything else is ignored.
 */
export function mergeCandle(bars: readonly Candle[], candle: Candle, series: SeriesVariables): MergeResult {
  if (!belongsTo(candle, series)) return { type: 'ignore', reason: 'other-series' };
  const last = bars[bars.length - 1];
  if (last === undefined || candle.timeMs > last.timeMs) {
    return { type: 'append', bars: [...bars, candle], index: bars.length };
  }
  const at = findBar(bars, candle.timeMs);
  if (at >= 0) {
    const existing = bars[at]!;
    if (!candle.closed && (existing.closed || at !== bars.length - 1)) {
      return { type: 'ignore', reason: 'stale-forming' };
    }
    if (candle.closed && existing.closed && candle.revision < existing.revision) {
      return { type: 'ignore', reason: 'older-revision' };
    }
    const next = bars.slice();
    next[at] = candle;
    return { type: 'replace', bars: next, index: at };
  }
  if (!candle.closed) return { type: 'ignore', reason: 'stale-forming' };
  const index = -at - 1;
  // Before the first loaded bar is outside what the user asked for; do not widen the window.
  if (index === 0) return { type: 'ignore', reason: 'before-window' };
  const next = bars.slice();
  next.splice(index, 0, candle);
  return { type: 'insert', bars: next, index };
}

/** Keeps the series ascending and free of duplicate times whatever order history arrived in. */
export function normaliseHistory(candles: readonly Candle[]): Candle[] {
  const sorted = [...candles].sort((a, b) => a.timeMs - b.timeMs);
  const out: Candle[] = [];
  for (const c of sorted) {
    if (out.length > 0 && out[out.length - 1]!.timeMs === c.timeMs) out[out.length - 1] = c;
    else out.push(c);
  }
  return out;
}

/**
 * Decimal places for the price axis, from the magnitude of recent closes: a BTC or stock
 * chart wants 2, a forex pair 4, a sub-dollar token 5, a sub-cent one 8. Defaults to 2 when
 * there is nothing to look at.
 */
export function pricePrecision(bars: readonly Pick<Candle, 'close'>[]): number {
  const recent = bars
    .slice(-50)
    .map((b) => Math.abs(b.close))
    .filter((p) => p > 0);
  if (recent.length === 0) return 2;
  const smallest = Math.min(...recent);
  if (smallest >= 10) return 2;
  if (smallest >= 1) return 4;
  if (smallest >= 0.01) return 5;
  return 8;
}

/**
 * What the chart must do after the series changed. Incremental updates are cheap; a reset
 * re-sends every point (history loaded, a hole filled). `fit` asks to move the view to the
 * latest bars, which a background refill after a reconnect must not do.
 */
export type SeriesChange =
  | { type: 'reset'; bars: readonly Candle[]; fit: boolean }
  | { type: 'update'; candle: Candle; historical: boolean };

export function changeFor(result: MergeResult): SeriesChange | null {
  switch (result.type) {
    case 'ignore':
      return null;
    case 'insert':
      return { type: 'reset', bars: result.bars, fit: false };
    case 'append':
    case 'replace':
      return {
        type: 'update',
        candle: result.bars[result.index]!,
        // lightweight-charts only updates a bar other than the last with historicalUpdate.
        historical: result.index !== result.bars.length - 1,
      };
  }
}

/**
 * How a series hands its changes to a chart: the bars to draw on mount, then every change in
 * order. A listener rather than a watched prop, because Vue coalesces prop updates within a
 * tick and a lost "append" would leave a hole in the chart.
 */
export interface ChartFeed {
  bars(): readonly Candle[];
  subscribe(listener: (change: SeriesChange) => void): () => void;
}
