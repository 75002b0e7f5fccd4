/**
 * The feed's settings: the exchanges file's ccxt entry (validated once, by its schema in
 * core/exchanges-config.ts) plus the internal tuning the file does not expose, and what differs
 * per exchange family (ccxt options, the REST paging cursor, whether ids are consecutive), all
 * in this one place.
 */
import type { CcxtExchangeOptions } from '../../../core/exchanges-config.ts';

/** Weight of the newest interval in a symbol's EWMA of the time between trades. */
const STALE_EWMA_ALPHA = 0.2;
/** How often the watchdog looks at every symbol. */
const STALE_CHECK_EVERY_MS = 1000;
/** Upper bound of a confirmed-quiet symbol's backed-off stale threshold. */
const STALE_MAX_BACKOFF_MS = 600_000;
/** Non-numeric trade ids remembered per symbol for dedupe: this long, at most this many. */
const DEDUPE_WINDOW_MS = 600_000;
const DEDUPE_MAX_IDS = 20_000;
/** Wait after a 429/418 that carries no Retry-After. */
const RATE_LIMIT_FALLBACK_MS = 10_000;

/** How fetchTrades pages forward from a watermark on an exchange. */
export type Cursor = 'binance-fromId' | 'kraken-ns' | 'since';

interface ExchangeFamily {
  matches(ccxtId: string): boolean;
  /** ccxt constructor `options` the feed needs (the file's `ccxt.options` win). */
  ccxtOptions: Record<string, unknown>;
  cursor: Cursor;
  /**
   * Trade ids count up by one per trade: a REST page that skips ids means history the exchange
   * no longer has, reported as a gap.
   */
  consecutiveIds: boolean;
}

const FAMILIES: readonly ExchangeFamily[] = [
  {
    matches: (id) => id.startsWith('binance'),
    // REST repair pages aggTrades: the stream must carry the same (aggregate) ids. With
    // credentials, ccxt's loadMarkets would also ask the private sapi for margin pairs, which
    // market data does not need (and a key without margin rights cannot get).
    ccxtOptions: {
      watchTradesForSymbols: { name: 'aggTrade' },
      watchTrades: { name: 'aggTrade' },
      fetchMargins: false,
    },
    cursor: 'binance-fromId',
    consecutiveIds: true,
  },
  { matches: (id) => id === 'kraken', ccxtOptions: {}, cursor: 'kraken-ns', consecutiveIds: false },
];

const OTHER: ExchangeFamily = {
  matches: () => true,
  ccxtOptions: {},
  cursor: 'since',
  consecutiveIds: false,
};

export function exchangeFamily(ccxtId: string): ExchangeFamily {
  return FAMILIES.find((f) => f.matches(ccxtId)) ?? OTHER;
}

export interface StalenessSettings {
  /** Stale after k × the expected interval without a live trade... */
  k: number;
  /** ...but never sooner than this... */
  minStaleMs: number;
  /** ...nor later than this (also the threshold before any interval is known). */
  maxStaleMs: number;
  alpha: number;
  checkEveryMs: number;
  maxBackoffMs: number;
}

export type FeedSettings = ReturnType<typeof feedSettings>;

/** The feed's frozen settings from a parsed ccxt entry of the exchanges file. */
export function feedSettings(o: CcxtExchangeOptions) {
  const family = exchangeFamily(o.ccxt.id);
  const staleness: StalenessSettings = {
    k: o.staleness.factor,
    minStaleMs: o.staleness.minMs,
    maxStaleMs: o.staleness.maxMs,
    alpha: STALE_EWMA_ALPHA,
    checkEveryMs: STALE_CHECK_EVERY_MS,
    maxBackoffMs: STALE_MAX_BACKOFF_MS,
  };
  return Object.freeze({
    exchangeId: o.ccxt.id,
    mode: o.ccxt.mode,
    pollIntervalMs: o.ccxt.pollIntervalMs,
    refreshAfterMs: o.refreshAfterMs,
    staleness: Object.freeze(staleness),
    breaker: Object.freeze({ failures: o.breaker.failures, halfOpenAfterMs: o.breaker.halfOpenAfterMs }),
    backoff: Object.freeze({ initialDelay: o.backoff.initialMs, maxDelay: o.backoff.maxMs }),
    repair: Object.freeze({ ...o.repair }),
    dedupe: Object.freeze({ windowMs: DEDUPE_WINDOW_MS, maxIds: DEDUPE_MAX_IDS, numericIdsIncrease: true }),
    rateLimitFallbackMs: RATE_LIMIT_FALLBACK_MS,
    consecutiveIds: family.consecutiveIds,
    cursor: family.cursor,
  });
}
