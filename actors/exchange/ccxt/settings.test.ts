import { describe, expect, it } from 'vitest';
import { parseStoredOptions } from '../../../core/exchanges-config.ts';
import { exchangeFamily, feedSettings } from './settings.ts';

function parsed(entry: Record<string, unknown>) {
  const o = parseStoredOptions('ccxt', entry);
  if (o.kind !== 'ccxt') throw new Error('not ccxt');
  return o;
}

describe('feedSettings', () => {
  it("takes the file schema's defaults, whatever the exchange", () => {
    const s = feedSettings(parsed({ ccxt: { id: 'kraken' } }));
    expect(s).toMatchObject({
      mode: 'auto',
      pollIntervalMs: 2000,
      refreshAfterMs: 23 * 3_600_000 + 50 * 60_000,
      staleness: { k: 10, minStaleMs: 5000, maxStaleMs: 15 * 60_000 },
      breaker: { failures: 5, halfOpenAfterMs: 30_000 },
      backoff: { initialDelay: 500, maxDelay: 60_000 },
      repair: { pageLimit: 1000, maxPages: 1000 },
      cursor: 'kraken-ns',
      consecutiveIds: false,
    });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('takes what the file sets', () => {
    const s = feedSettings(
      parsed({
        ccxt: { id: 'binanceus' },
        staleness: { factor: 4, minMs: 1000, maxMs: 3000 },
        refreshAfterMs: 0,
      }),
    );
    expect(s).toMatchObject({ staleness: { k: 4, minStaleMs: 1000, maxStaleMs: 3000 }, refreshAfterMs: 0 });
    expect(s).toMatchObject({ cursor: 'binance-fromId', consecutiveIds: true });
  });
});

describe('exchangeFamily', () => {
  it('binance streams aggregate trades (the ids REST pages by); others need nothing', () => {
    expect(exchangeFamily('binance').ccxtOptions).toMatchObject({
      watchTradesForSymbols: { name: 'aggTrade' },
    });
    expect(exchangeFamily('coinbase')).toMatchObject({
      ccxtOptions: {},
      cursor: 'since',
      consecutiveIds: false,
    });
  });
});
