import { describe, expect, it } from 'vitest';
import type {
  CandleFieldsFragment as Candle,
  LiveCandlesSubscriptionVariables as SeriesVariables,
} from '../graphql/generated/operations';
import {
  changeFor,
  DARK_CHART_COLOURS,
  findBar,
  mergeCandle,
  normaliseHistory,
  pricePrecision,
  toBar,
  toChartTime,
  toStreamMessage,
  toVolumePoint,
} from './candles';

const SERIES: SeriesVariables = { exchange: 'sim', symbol: 'BTC/USDT', timeframe: '1m' };
const T0 = Date.UTC(2024, 0, 2, 3, 4); // 2024-01-02T03:04:00Z
const MIN = 60_000;

function candle(minute: number, over: Partial<Candle> = {}): Candle {
  return {
    ...SERIES,
    timeMs: T0 + minute * MIN,
    open: 100,
    high: 110,
    low: 95,
    close: 105,
    volume: 3,
    trades: 7,
    closed: true,
    gap: 0,
    revision: 0,
    ...over,
  };
}

const history = [candle(0), candle(1), candle(2)];

describe('toBar / toVolumePoint', () => {
  it('converts epoch milliseconds to UTC seconds for lightweight-charts', () => {
    expect(toChartTime(T0)).toBe(T0 / 1000);
    expect(toChartTime(T0 + 999)).toBe(T0 / 1000);
    expect(toBar(candle(0))).toEqual({ time: T0 / 1000, open: 100, high: 110, low: 95, close: 105 });
  });

  it('colours volume by bar direction, a flat bar counting as up', () => {
    expect(toVolumePoint(candle(0)).color).toBe(DARK_CHART_COLOURS.upVolume);
    expect(toVolumePoint(candle(0, { close: 90 })).color).toBe(DARK_CHART_COLOURS.downVolume);
    expect(toVolumePoint(candle(0, { close: 100 })).color).toBe(DARK_CHART_COLOURS.upVolume);
    expect(toVolumePoint(candle(1, { volume: 12.5 }))).toMatchObject({ time: T0 / 1000 + 60, value: 12.5 });
  });
});

describe('toStreamMessage', () => {
  it('keys forming and closed bars apart', () => {
    expect(toStreamMessage(candle(0, { closed: false })).type).toBe('forming');
    expect(toStreamMessage(candle(0)).type).toBe('closed');
  });
});

describe('findBar', () => {
  it('finds exact times and reports insertion points for missing ones', () => {
    const bars = [candle(0), candle(2), candle(4)];
    expect(findBar(bars, T0 + 2 * MIN)).toBe(1);
    expect(findBar(bars, T0 + 3 * MIN)).toBe(-3);
    expect(findBar(bars, T0 - MIN)).toBe(-1);
    expect(findBar([], T0)).toBe(-1);
  });
});

describe('mergeCandle', () => {
  it('appends a bar newer than the last one without touching the input', () => {
    const forming = candle(3, { closed: false });
    const r = mergeCandle(history, forming, SERIES);
    expect(r).toMatchObject({ type: 'append', index: 3 });
    if (r.type === 'ignore') throw new Error('unexpected ignore');
    expect(r.bars).toHaveLength(4);
    expect(history).toHaveLength(3);
  });

  it('appends to an empty series', () => {
    expect(mergeCandle([], candle(0, { closed: false }), SERIES)).toMatchObject({ type: 'append', index: 0 });
  });

  it('updates the forming last bar in place, then closes it', () => {
    const a = mergeCandle(history, candle(3, { closed: false, close: 101 }), SERIES);
    if (a.type === 'ignore') throw new Error('unexpected ignore');
    const b = mergeCandle(a.bars, candle(3, { closed: false, close: 102 }), SERIES);
    expect(b).toMatchObject({ type: 'replace', index: 3 });
    if (b.type === 'ignore') throw new Error('unexpected ignore');
    const c = mergeCandle(b.bars, candle(3, { close: 103 }), SERIES);
    expect(c).toMatchObject({ type: 'replace', index: 3 });
    if (c.type === 'ignore') throw new Error('unexpected ignore');
    expect(c.bars[3]).toMatchObject({ closed: true, close: 103 });
  });

  it('ignores a forming update for a bar already held closed', () => {
    expect(mergeCandle(history, candle(2, { closed: false }), SERIES)).toEqual({
      type: 'ignore',
      reason: 'stale-forming',
    });
  });

  it('ignores forming updates older than the last bar', () => {
    expect(mergeCandle(history, candle(1, { closed: false }), SERIES)).toMatchObject({ type: 'ignore' });
  });

  // Closed bar T may arrive after the first forming update of T+1 (grace for late trades).
  it('applies the late closed version of the previous bar in place', () => {
    const withForming = [...history, candle(3, { closed: false }), candle(4, { closed: false })];
    const r = mergeCandle(withForming, candle(3, { close: 99 }), SERIES);
    expect(r).toMatchObject({ type: 'replace', index: 3 });
    if (r.type === 'ignore') throw new Error('unexpected ignore');
    expect(r.bars[3]).toMatchObject({ closed: true, close: 99 });
    expect(r.bars[4]).toMatchObject({ closed: false });
  });

  it('accepts an exact-time revision of an older closed bar, but not an older revision', () => {
    const revised = mergeCandle(history, candle(1, { revision: 2, close: 108 }), SERIES);
    expect(revised).toMatchObject({ type: 'replace', index: 1 });
    if (revised.type === 'ignore') throw new Error('unexpected ignore');
    expect(mergeCandle(revised.bars, candle(1, { revision: 1 }), SERIES)).toEqual({
      type: 'ignore',
      reason: 'older-revision',
    });
    // A redelivery of the same revision is harmless and idempotent.
    expect(mergeCandle(revised.bars, candle(1, { revision: 2, close: 108 }), SERIES).type).toBe('replace');
  });

  it('fills a hole inside the window with a closed bar, but never widens the window', () => {
    const holey = [candle(0), candle(2)];
    const r = mergeCandle(holey, candle(1), SERIES);
    expect(r).toMatchObject({ type: 'insert', index: 1 });
    if (r.type === 'ignore') throw new Error('unexpected ignore');
    expect(r.bars.map((b) => b.timeMs)).toEqual([T0, T0 + MIN, T0 + 2 * MIN]);
    expect(mergeCandle(holey, candle(-1), SERIES)).toEqual({ type: 'ignore', reason: 'before-window' });
  });

  it('ignores candles of another series (a late message after switching)', () => {
    const other = { ...candle(5), symbol: 'ETH/USDT' };
    expect(mergeCandle(history, other, SERIES)).toEqual({ type: 'ignore', reason: 'other-series' });
    expect(mergeCandle(history, { ...candle(5), timeframe: '5m' }, SERIES).type).toBe('ignore');
  });
});

describe('normaliseHistory', () => {
  it('sorts ascending and keeps the last copy of a duplicated time', () => {
    const out = normaliseHistory([candle(2), candle(0), candle(2, { close: 1 }), candle(1)]);
    expect(out.map((c) => c.timeMs)).toEqual([T0, T0 + MIN, T0 + 2 * MIN]);
    expect(out[2]!.close).toBe(1);
  });
});

describe('pricePrecision', () => {
  it('picks decimals from the price magnitude', () => {
    expect(pricePrecision([])).toBe(2);
    expect(pricePrecision([{ close: 64_123.5 }])).toBe(2);
    expect(pricePrecision([{ close: 1.0845 }])).toBe(4);
    expect(pricePrecision([{ close: 0.5231 }])).toBe(5);
    expect(pricePrecision([{ close: 0.00001234 }])).toBe(8);
  });
});

describe('changeFor', () => {
  it('turns merges into chart work: update in place, historical update, or full reset', () => {
    expect(changeFor(mergeCandle(history, candle(3, { closed: false }), SERIES))).toMatchObject({
      type: 'update',
      historical: false,
    });
    expect(changeFor(mergeCandle(history, candle(2, { revision: 1 }), SERIES))).toMatchObject({
      type: 'update',
      historical: false,
    });
    expect(changeFor(mergeCandle(history, candle(1, { revision: 1 }), SERIES))).toMatchObject({
      type: 'update',
      historical: true,
    });
    expect(changeFor(mergeCandle([candle(0), candle(2)], candle(1), SERIES))).toMatchObject({
      type: 'reset',
      fit: false,
    });
    expect(changeFor(mergeCandle(history, candle(0, { closed: false }), SERIES))).toBeNull();
  });
});
