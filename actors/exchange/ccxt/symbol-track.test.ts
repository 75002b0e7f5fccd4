import { describe, expect, it } from 'vitest';
import type { Trade } from '../../../core/protocol/index.ts';
import { idsSkipped, inExchangeOrder, normaliseTrade, reaches, SymbolTrack } from './symbol-track.ts';

describe('SymbolTrack', () => {
  const opts = { windowMs: 60_000, maxIds: 100, alpha: 0.5, numericIdsIncrease: true, maxSampleMs: 10_000 };
  const t = (id: string, ts: number): Trade => ({ id, ts, px: 1, qty: 1 });

  it('accepts each numeric id once and only forward', () => {
    const track = new SymbolTrack(opts, { id: '10', ts: 1000 });
    expect(track.accept(t('10', 1000))).toBe(false);
    expect(track.accept(t('9', 1200))).toBe(false);
    expect(track.accept(t('11', 1100))).toBe(true);
    expect(track.accept(t('11', 1100))).toBe(false);
    expect(track.accept(t('12', 1300))).toBe(true);
    expect(track.lastId).toBe('12');
  });

  it('without numeric ids: dedupes by recent id and refuses trades older than the watermark', () => {
    const track = new SymbolTrack({ ...opts, numericIdsIncrease: false });
    expect(track.accept(t('b', 1000))).toBe(true);
    expect(track.accept(t('a', 1000))).toBe(true); // same ms, other id
    expect(track.accept(t('b', 1000))).toBe(false);
    expect(track.accept(t('z', 999))).toBe(false);
    expect(track.accept(t('c', 1001))).toBe(true);
  });

  it('estimates the interval with an EWMA, a long pause capped', () => {
    const track = new SymbolTrack(opts, { id: '1', ts: 0 });
    track.accept(t('2', 100_000)); // a pause longer than maxSampleMs counts as 10 s
    expect(track.expectedIntervalMs).toBe(10_000);
    track.accept(t('3', 101_000));
    expect(track.expectedIntervalMs).toBe(5500);
  });
});

describe('normaliseTrade', () => {
  it('maps a ccxt trade and rejects unusable ones', () => {
    expect(normaliseTrade({ id: '7', timestamp: 5, price: 1.5, amount: 2, side: 'sell' })).toEqual({
      trade: { id: '7', ts: 5, px: 1.5, qty: 2, side: 'sell' },
    });
    expect(normaliseTrade({ id: 8, timestamp: 5, price: 1.5, amount: 0, side: 'other' })).toEqual({
      trade: { id: '8', ts: 5, px: 1.5, qty: 0 },
    });
    expect(normaliseTrade({ timestamp: 5, price: 1.5, amount: 2 })).toHaveProperty('problem');
    expect(normaliseTrade({ id: '9', timestamp: 5, price: Number.NaN, amount: 2 })).toHaveProperty('problem');
    expect(normaliseTrade({ id: '9', timestamp: undefined, price: 1, amount: 2 })).toHaveProperty('problem');
  });
});

describe('inExchangeOrder', () => {
  const t = (id: string, ts: number): Trade => ({ id, ts, px: 1, qty: 1 });

  it('puts numeric ids of one millisecond back in numeric order (ccxt sorts them as strings)', () => {
    const sorted = inExchangeOrder([t('10000', 5), t('9998', 5), t('9999', 5), t('10001', 6)]);
    expect(sorted.map((x) => x.id)).toEqual(['9998', '9999', '10000', '10001']);
  });

  it('leaves trades in order, and non-numeric ids, as they are', () => {
    const inOrder = [t('1', 1), t('2', 1), t('3', 2)];
    expect(inExchangeOrder(inOrder)).toBe(inOrder);
    const opaque = [t('b', 1), t('a', 1)];
    expect(inExchangeOrder(opaque)).toBe(opaque);
  });
});

describe('idsSkipped and reaches', () => {
  const t = (id: string, ts: number): Trade => ({ id, ts, px: 1, qty: 1 });

  it('counts the ids missing between the watermark and a trade', () => {
    expect(idsSkipped('10', t('11', 0))).toBe(0n);
    expect(idsSkipped('10', t('14', 0))).toBe(3n);
    expect(idsSkipped(undefined, t('14', 0))).toBe(0n);
    expect(idsSkipped('a', t('14', 0))).toBe(0n);
  });

  it('tells whether a REST trade has reached a live one, by id where ids increase, else by time', () => {
    expect(reaches(t('5', 100), t('5', 100), true)).toBe(true);
    expect(reaches(t('6', 50), t('5', 100), true)).toBe(true);
    expect(reaches(t('4', 200), t('5', 100), true)).toBe(false);
    expect(reaches(t('4', 200), t('5', 100), false)).toBe(true);
    expect(reaches(t('x', 100), t('y', 100), true)).toBe(false);
  });
});
