/**
 * The ccxt feed's public types: what it hands on (TradeSink), where it resumes, what it reports
 * (FeedHealth), and the parts of a ccxt (pro) instance it uses.
 */
import type { CircuitState } from '../../../core/circuit-breaker.ts';
import type { TradeSource as ProtocolTradeSource, Trade } from '../../../core/protocol/index.ts';
import type { SymbolFeedState } from './symbol-phase.ts';

/** The protocol's trade sources a feed produces (`TradeBatch.source`). */
export type TradeSource = Extract<ProtocolTradeSource, 'live' | 'repair'>;

/**
 * A window of a symbol's trades the feed could not repair: trades in (from, to) may be missing.
 * `from` is the last trade handed on before it, `to` the first one after it.
 */
export interface FeedGap {
  from: number;
  to: number;
  reason: string;
}

export interface TradeSink {
  /** Called per symbol in exchange order; the next call for that symbol waits for this one. */
  onTrades(symbol: string, trades: Trade[], source: TradeSource): Promise<void>;
  /**
   * An unrepairable gap, called (in the same per-symbol order) right after the trades that end
   * it, so the bars it overlaps already exist when it is applied.
   */
  onGap?(symbol: string, gap: FeedGap): Promise<void>;
}

/** Where a symbol resumes: the last trade already handled (e.g. the last one stored in TRADES). */
export interface ResumePoint {
  id: string;
  ts: number;
}

/** The parts of a ccxt (pro) exchange instance the feed uses. */
export interface CcxtExchange {
  id: string;
  has: Record<string, unknown>;
  markets?: Record<string, unknown>;
  urls: Record<string, unknown>;
  options: Record<string, unknown>;
  httpAgent?: unknown;
  trades?: Record<string, CcxtTradeCache | undefined>;
  clients?: Record<string, CcxtWsClient | undefined>;
  last_response_headers?: Record<string, string>;
  onConnected?: (client: CcxtWsClient, message?: unknown) => void;
  loadMarkets(reload?: boolean): Promise<unknown>;
  loadHttpProxyAgent?(): Promise<unknown>;
  loadProxyModules?(): Promise<unknown>;
  fetchTrades(
    symbol: string,
    since?: number,
    limit?: number,
    params?: Record<string, unknown>,
  ): Promise<CcxtTrade[]>;
  watchTradesForSymbols?(
    symbols: string[],
    since?: number,
    limit?: number,
    params?: Record<string, unknown>,
  ): Promise<CcxtTrade[]>;
  close(): Promise<unknown>;
}

export interface CcxtTrade {
  id?: unknown;
  timestamp?: unknown;
  price?: unknown;
  amount?: unknown;
  side?: unknown;
}

export interface CcxtTradeCache extends Array<CcxtTrade> {
  maxSize?: number;
}

export interface CcxtWsClient {
  url: string;
  close(): Promise<unknown> | undefined;
  connection?: { terminate?: () => void; readyState?: number };
}

/**
 * Whether the feed reaches its exchange: `unreachable` once the circuit opened while no
 * connection stood (every dial or REST call failed), with the error and since when.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'unreachable';

export interface ConnectionHealth {
  state: ConnectionState;
  /** Clock time of the last change of `state`. */
  since: number;
  /** The last failed call while not connected (null when connected). */
  lastError: { message: string; at: number } | null;
}

export interface SymbolHealth {
  lastTradeTs: number | null;
  lastTradeAgeMs: number | null;
  expectedIntervalMs: number | null;
  staleAfterMs: number;
  /** Flagged by the watchdog, or REST showed the stream missing trades and no live one came since. */
  stale: boolean;
  tradesReceived: number;
  state: SymbolFeedState;
}

export interface FeedCounters {
  reconnects: number;
  refreshes: number;
  staleEvents: number;
  backfilled: number;
  /** Trades dropped by normalisation (missing id, non-finite price, ...). */
  malformed: number;
  /** Frames ccxt could not parse at all (it only logs them). */
  malformedFrames: number;
  /** Watch calls rejected by ccxt over an unreadable frame (socket still open). */
  frameErrors: number;
  duplicates: number;
  restCalls: number;
  /** Failed exchange calls and websocket errors (each also becomes `lastError`). */
  errors: number;
  /** Unrepairable gaps reported through `onGap`. */
  gaps: number;
}

export interface FeedHealth extends FeedCounters {
  exchange: string;
  mode: 'ws' | 'poll' | 'starting';
  connected: boolean;
  connection: ConnectionHealth;
  circuit: CircuitState;
  circuitTransitions: { to: CircuitState; at: number }[];
  /** Trades handed to the sink and not yet taken by it (grows while the sink is stuck). */
  queuedTrades: number;
  restWeightUsed: number;
  lastError: { message: string; at: number } | null;
  retryAfterUntil: number | null;
  unknownSymbols: string[];
  symbols: Record<string, SymbolHealth>;
}
