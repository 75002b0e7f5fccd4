import { describe, expect, it } from 'vitest';
import {
  formatAge,
  formatPercent,
  formatPrice,
  formatUtcMinute,
  parseSymbolKey,
  seriesKey,
  seriesLabel,
  symbolKey,
  symbolLabel,
} from './format';

describe('symbol keys', () => {
  it('round-trip, including symbols that contain a colon', () => {
    expect(symbolLabel('sim', 'BTC/USDT')).toBe('sim · BTC/USDT');
    expect(parseSymbolKey(symbolKey('binance', 'BTC/USDT:USDT'))).toEqual({
      exchange: 'binance',
      symbol: 'BTC/USDT:USDT',
    });
    expect(parseSymbolKey('nocolon')).toBeNull();
    expect(parseSymbolKey(':BTC')).toBeNull();
    expect(seriesKey({ exchange: 'yahoo', symbol: 'BRK-B', timeframe: '1d' })).toBe('yahoo:BRK-B:1d');
    expect(seriesLabel({ exchange: 'yahoo', symbol: 'BRK-B', timeframe: '1d' })).toBe('yahoo · BRK-B · 1d');
  });
});

describe('formatting', () => {
  it('prints prices as plain fixed-point numbers', () => {
    expect(formatPrice(64123.5, 2)).toBe('64123.50');
    expect(Number(formatPrice(0.00001234, 8))).toBe(0.00001234);
    expect(formatPercent(0.0123)).toBe('+1.23%');
    expect(formatPercent(-0.5)).toBe('-50.00%');
  });

  it('prints ages coarsely', () => {
    const now = 1_000_000_000;
    expect(formatAge(now + 5000, now)).toBe('now');
    expect(formatAge(now - 4500, now)).toBe('4s ago');
    expect(formatAge(now - 180_000, now)).toBe('3m ago');
    expect(formatAge(now - 2 * 3_600_000, now)).toBe('2h ago');
    expect(formatAge(now - 5 * 86_400_000, now)).toBe('5d ago');
  });

  it('prints bar times in UTC', () => {
    expect(formatUtcMinute(Date.UTC(2024, 0, 2, 3, 4))).toBe('2024-01-02 03:04 UTC');
  });
});
