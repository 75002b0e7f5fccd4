/**
 * Per-symbol feed metrics of an exchange actor (circuit state, errors, age of the newest data,
 * market open or closed), fed from the feed's own health snapshot. Shared by the polling and
 * streaming adapters; the label sets are removed when the actor stops, so a stopped feed does
 * not keep reporting a stale circuit or age.
 */
import { metrics } from '../../core/metrics.ts';

export type CircuitName = 'closed' | 'half-open' | 'open';

/** The gauge value of a circuit state (0 closed, 1 half-open, 2 open). */
export const CIRCUIT_LEVEL: Readonly<Record<CircuitName, number>> = Object.freeze({
  closed: 0,
  'half-open': 1,
  open: 2,
});

export interface SymbolFeedSample {
  circuit: CircuitName;
  /** Total failures so far (a running count: only its increase is added to the counter). */
  errors: number;
  /** When the newest delivered data ends (a bar's end, a trade's time), epoch ms; null before any. */
  lastDataAt: number | null;
  /** null when the feed has no calendar notion (a 24x7 stream). */
  marketOpen: boolean | null;
}

/** Exchange-wide running totals of a streaming feed (one circuit and socket for every symbol). */
export interface ExchangeFeedSample {
  /** Total failures so far (counted under symbol "" in tickmesh_feed_errors_total). */
  errors: number;
  reconnects: number;
  restWeightUsed: number;
}

/** The symbol label of exchange-wide feed errors. */
export const WHOLE_EXCHANGE = '';

export class FeedMetrics {
  private readonly errorsSeen = new Map<string, number>();
  private exchangeSeen: { errors: number; reconnects: number } | null = null;

  constructor(private readonly exchange: string) {}

  /** Records one sample of a symbol's feed health, at `now`. */
  sample(symbol: string, s: SymbolFeedSample, now: number): void {
    const labels = { exchange: this.exchange, symbol };
    metrics.feedCircuitState.set(labels, CIRCUIT_LEVEL[s.circuit]);
    const seen = this.errorsSeen.get(symbol) ?? 0;
    if (s.errors > seen) metrics.feedErrors.inc(labels, s.errors - seen);
    this.errorsSeen.set(symbol, Math.max(seen, s.errors));
    if (s.lastDataAt !== null) metrics.feedLastDataAge.set(labels, Math.max(0, now - s.lastDataAt) / 1000);
    if (s.marketOpen !== null) metrics.feedMarketOpen.set(labels, s.marketOpen ? 1 : 0);
  }

  /** Records the exchange-wide totals; counters grow by what is new since the last sample. */
  sampleExchange(s: ExchangeFeedSample): void {
    const seen = this.exchangeSeen ?? { errors: 0, reconnects: 0 };
    if (s.errors > seen.errors)
      metrics.feedErrors.inc({ exchange: this.exchange, symbol: WHOLE_EXCHANGE }, s.errors - seen.errors);
    if (s.reconnects > seen.reconnects)
      metrics.feedReconnects.inc({ exchange: this.exchange }, s.reconnects - seen.reconnects);
    this.exchangeSeen = {
      errors: Math.max(seen.errors, s.errors),
      reconnects: Math.max(seen.reconnects, s.reconnects),
    };
    metrics.feedRestWeight.set({ exchange: this.exchange }, s.restWeightUsed);
  }

  /** Drops the gauges of every symbol sampled (counters keep their totals). */
  remove(): void {
    if (this.exchangeSeen) metrics.feedRestWeight.remove({ exchange: this.exchange });
    for (const symbol of this.errorsSeen.keys()) {
      const labels = { exchange: this.exchange, symbol };
      metrics.feedCircuitState.remove(labels);
      metrics.feedLastDataAge.remove(labels);
      metrics.feedMarketOpen.remove(labels);
    }
  }
}
