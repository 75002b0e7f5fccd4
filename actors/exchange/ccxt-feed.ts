/**
 * The live trades of one exchange through ccxt, NATS-agnostic: normalised, deduplicated and in
 * exchange order per symbol, handed to a sink.
 *
 * - Streams with ccxt.pro `watchTradesForSymbols` when the exchange has websockets, else polls
 *   `fetchTrades` (mode 'auto'; 'ws' and 'poll' force one).
 * - After every (re)connect, stall, proactive refresh or unreadable frame it repairs the gap over
 *   REST, paging forward from the last trade it handed on, and hands the missing trades on
 *   (source 'repair') before the live trades that arrived meanwhile (buffered per symbol).
 * - A repair after a reconnect is only trusted once the websocket has proven live: a REST page
 *   requested after the first buffered live trade arrived. Otherwise trades between the last
 *   REST answer and the moment the subscription really started would be lost; when no live trade
 *   came during the repair, the first one to come triggers a short verifying repair.
 * - Dead-feed detection per symbol: an EWMA of the exchange-time interval between trades; a
 *   symbol is stale after clamp(k × interval, minStaleMs, maxStaleMs) without a live trade. A
 *   stale symbol is probed over REST: trades found there mean the stream is broken (reconnect);
 *   none means the market is quiet, and that symbol's checks back off (doubling).
 * - A hole it cannot repair is reported to the sink (`onGap`) right after the trades that end
 *   it: REST skipping ids where ids are consecutive (Binance aggregate ids: the exchange no longer
 *   has that history), a repair the exchange keeps refusing, a repair stopped at its page limit.
 * - One circuit breaker per exchange guards REST calls and websocket dials; 429/418 answers
 *   stop every request until their Retry-After has passed. All delays run on the injected Clock.
 *
 * ccxt behaviour this relies on (4.5.84, see the fakes in test/fakes for the wire formats):
 * - a dropped socket rejects the pending watch with NetworkError ("connection closed by remote
 *   server, closing code 1006"); the next watch call dials again (ccxt's own reconnect delay is
 *   switched off here, ours runs on the Clock);
 * - an unreadable frame (invalid JSON, NaN price, wrong shape) makes ccxt reject every pending
 *   watch on that socket with a plain TypeError/SyntaxError/ArgumentsRequired while the socket
 *   stays open; frames ccxt cannot JSON.parse only reach `exchange.log`;
 * - ccxt never notices a socket that stays open but stops sending (hence the stale detection);
 * - trades land in `exchange.trades[symbol]` (a bounded ArrayCache): racing several symbols in
 *   one watch call can resolve one symbol and leave another's new trades unannounced, so every
 *   wake-up reads all symbols' caches;
 * - a failed `loadMarkets()` stays cached as a rejected promise: retries must pass reload=true;
 * - 429/418 surface as DDoSProtection/RateLimitExceeded; the Retry-After header is only in
 *   `exchange.last_response_headers`, which is why REST calls go out one at a time.
 */
import ccxt from 'ccxt';
import { ConsecutiveBreaker, ExponentialBackoff, type IBackoff } from 'cockatiel';
import { pino } from 'pino';
import { type Clock, sleep, systemClock, type TimerHandle } from '../../core/clock.ts';
import { ConfigError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import {
  type TradeSource as ProtocolTradeSource,
  type Trade,
  tradeProblem,
} from '../../core/protocol/index.ts';

// ---------------------------------------------------------------- public types

export type FeedMode = 'auto' | 'ws' | 'poll';
/** The protocol's trade sources a feed produces (`TradeBatch.source`). */
export type TradeSource = Extract<ProtocolTradeSource, 'live' | 'repair'>;
export type SymbolFeedState = 'streaming' | 'repairing' | 'stale' | 'polling' | 'backoff';
export type CircuitStateName = 'closed' | 'open' | 'half-open';

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

export interface StalenessConfig {
  /** Stale after k × the expected interval without a live trade... */
  k: number;
  /** ...but never sooner than this... */
  minStaleMs: number;
  /** ...nor later than this (also the threshold before any interval is known). */
  maxStaleMs: number;
  /** Weight of the newest interval in the EWMA. */
  alpha: number;
  /** How often the watchdog looks. */
  checkEveryMs: number;
  /** Upper bound of a quiet symbol's backed-off threshold. */
  maxBackoffMs: number;
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

interface CcxtTradeCache extends Array<CcxtTrade> {
  maxSize?: number;
}

interface CcxtWsClient {
  url: string;
  close(): Promise<unknown> | undefined;
  connection?: { terminate?: () => void; readyState?: number };
}

export interface CcxtFeedConfig {
  /** ccxt id, e.g. 'binance', 'kraken'. */
  exchangeId: string;
  /** Unified ccxt symbols, e.g. 'BTC/USDT'. */
  symbols: readonly string[];
  mode?: FeedMode;
  /** Passed to the ccxt constructor (merged over the feed's per-exchange defaults). */
  options?: Record<string, unknown>;
  /** Runs on the new ccxt instance before any call (tests point its urls at a fake). */
  configure?: (exchange: CcxtExchange) => void;
  clock?: Clock;
  log?: Logger;
  pollIntervalMs?: number;
  staleness?: Partial<StalenessConfig>;
  /** Proactive reconnect before the exchange's own connection limit; 0 disables. */
  refreshAfterMs?: number;
  breaker?: Partial<{ threshold: number; halfOpenAfterMs: number }>;
  /** Backoff between failed dials/REST calls (the first reconnect after a drop is immediate). */
  reconnect?: Partial<{ initialDelayMs: number; maxDelayMs: number }>;
  repair?: Partial<{ pageLimit: number; maxPages: number }>;
  /** Per symbol: the last trade already handled; the feed first repairs from there. */
  resume?: Record<string, ResumePoint>;
  dedupe?: Partial<{ windowMs: number; maxIds: number; numericIdsIncrease: boolean }>;
  /** Wait after a 429/418 that carries no Retry-After. */
  rateLimitFallbackMs?: number;
  /**
   * Trade ids count up by one per trade (Binance aggregate ids; default for binance*): a REST page
   * that skips ids means history the exchange no longer has, reported through `onGap`.
   */
  consecutiveIds?: boolean;
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

export interface FeedHealth {
  exchange: string;
  mode: 'ws' | 'poll' | 'starting';
  connected: boolean;
  circuit: CircuitStateName;
  circuitTransitions: { to: CircuitStateName; at: number }[];
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
  /** Trades handed to the sink and not yet taken by it (grows while the sink is stuck). */
  queuedTrades: number;
  restWeightUsed: number;
  lastError: { message: string; at: number } | null;
  retryAfterUntil: number | null;
  unknownSymbols: string[];
  symbols: Record<string, SymbolHealth>;
}

// ---------------------------------------------------------------- settings

const BINANCE_REFRESH_MS = 23 * 3_600_000 + 50 * 60_000; // Binance closes sockets after 24 h

/** ccxt options the feed needs per exchange family (the caller's options win). */
function exchangeDefaults(exchangeId: string): Record<string, unknown> {
  if (exchangeId.startsWith('binance')) {
    // REST repair pages aggTrades: the stream must carry the same (aggregate) ids. With
    // credentials, ccxt's loadMarkets would also ask the private sapi for margin pairs, which
    // market data does not need (and a key without margin rights cannot get).
    return {
      watchTradesForSymbols: { name: 'aggTrade' },
      watchTrades: { name: 'aggTrade' },
      fetchMargins: false,
    };
  }
  return {};
}

/** How fetchTrades pages forward from a watermark on this exchange. */
type Cursor = 'binance-fromId' | 'kraken-ns' | 'since';
function cursorFor(exchangeId: string): Cursor {
  if (exchangeId.startsWith('binance')) return 'binance-fromId';
  if (exchangeId === 'kraken') return 'kraken-ns';
  return 'since';
}

function resolveSettings(c: CcxtFeedConfig) {
  const problems: string[] = [];
  const positive = (name: string, v: number, allowZero = false) => {
    if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0))
      problems.push(`${name} must be a positive number`);
    return v;
  };
  if (!c.exchangeId) problems.push('exchangeId is required');
  if (c.symbols.length === 0) problems.push('symbols must not be empty');
  if (new Set(c.symbols).size !== c.symbols.length) problems.push('symbols must be distinct');
  const s = {
    mode: c.mode ?? 'auto',
    pollIntervalMs: positive('pollIntervalMs', c.pollIntervalMs ?? 2000),
    refreshAfterMs: positive(
      'refreshAfterMs',
      c.refreshAfterMs ?? (c.exchangeId.startsWith('binance') ? BINANCE_REFRESH_MS : 12 * 3_600_000),
      true,
    ),
    staleness: {
      k: positive('staleness.k', c.staleness?.k ?? 10),
      minStaleMs: positive('staleness.minStaleMs', c.staleness?.minStaleMs ?? 5000),
      maxStaleMs: positive('staleness.maxStaleMs', c.staleness?.maxStaleMs ?? 300_000),
      alpha: positive('staleness.alpha', c.staleness?.alpha ?? 0.2),
      checkEveryMs: positive('staleness.checkEveryMs', c.staleness?.checkEveryMs ?? 1000),
      maxBackoffMs: positive('staleness.maxBackoffMs', c.staleness?.maxBackoffMs ?? 600_000),
    },
    breaker: {
      threshold: positive('breaker.threshold', c.breaker?.threshold ?? 5),
      halfOpenAfterMs: positive('breaker.halfOpenAfterMs', c.breaker?.halfOpenAfterMs ?? 30_000),
    },
    reconnect: {
      initialDelayMs: positive('reconnect.initialDelayMs', c.reconnect?.initialDelayMs ?? 500),
      maxDelayMs: positive('reconnect.maxDelayMs', c.reconnect?.maxDelayMs ?? 30_000),
    },
    repair: {
      pageLimit: positive('repair.pageLimit', c.repair?.pageLimit ?? 1000),
      maxPages: positive('repair.maxPages', c.repair?.maxPages ?? 1000),
    },
    dedupe: {
      windowMs: positive('dedupe.windowMs', c.dedupe?.windowMs ?? 600_000),
      maxIds: positive('dedupe.maxIds', c.dedupe?.maxIds ?? 20_000),
      numericIdsIncrease: c.dedupe?.numericIdsIncrease ?? true,
    },
    rateLimitFallbackMs: positive('rateLimitFallbackMs', c.rateLimitFallbackMs ?? 10_000),
    consecutiveIds: c.consecutiveIds ?? c.exchangeId.startsWith('binance'),
  };
  if (!['auto', 'ws', 'poll'].includes(s.mode)) problems.push(`mode must be auto, ws or poll`);
  if (s.staleness.minStaleMs > s.staleness.maxStaleMs)
    problems.push('staleness.minStaleMs exceeds maxStaleMs');
  if (s.staleness.alpha > 1) problems.push('staleness.alpha must be at most 1');
  if (problems.length > 0) throw new ConfigError(`ccxt feed: ${problems.join('; ')}`);
  return Object.freeze(s);
}

type Settings = ReturnType<typeof resolveSettings>;

// ---------------------------------------------------------------- pure parts

/** A ccxt trade as a tickmesh Trade, or the reason it is unusable. */
export function normaliseTrade(t: CcxtTrade): { trade: Trade } | { problem: string } {
  const side = t.side === 'buy' || t.side === 'sell' ? t.side : undefined;
  const trade: Trade = {
    id: typeof t.id === 'string' || typeof t.id === 'number' ? String(t.id) : '',
    ts: t.timestamp as number,
    px: t.price as number,
    qty: t.amount as number,
    ...(side ? { side } : {}),
  };
  const problem = tradeProblem(trade);
  return problem ? { problem } : { trade };
}

const NUMERIC_ID = /^\d{1,30}$/;
const numericId = (id: string): bigint | undefined => (NUMERIC_ID.test(id) ? BigInt(id) : undefined);

/**
 * One symbol's memory of what was handed on: the watermark (last id/ts), the recent ids (a
 * bounded time window) and the EWMA of the exchange-time interval between trades. Pure: no I/O,
 * no clock.
 */
export class SymbolTrack {
  lastId: string | undefined;
  lastTs: number | undefined;
  expectedIntervalMs: number | undefined;
  private lastNum: bigint | undefined;
  private readonly recent = new Map<string, number>(); // id -> ts
  /**
   * The ids of `recent` oldest first, from `head` on: evicting through this queue is O(1). (Walking
   * the Map from its start instead visits every entry deleted since its last rehash: at tens of
   * thousands of trades a second that walk took half the feed's time.)
   */
  private readonly order: string[] = [];
  private head = 0;

  constructor(
    private readonly opts: {
      windowMs: number;
      maxIds: number;
      alpha: number;
      numericIdsIncrease: boolean;
      maxSampleMs: number;
    },
    resume?: ResumePoint,
  ) {
    if (resume) this.remember(resume.id, resume.ts);
  }

  /** Whether `t` has not been handed on yet and may follow the watermark. */
  isNew(t: Trade): boolean {
    return this.isNewWith(t, numericId(t.id));
  }

  /** Records `t` as handed on if it is new; returns whether it was. */
  accept(t: Trade): boolean {
    const n = numericId(t.id); // parsed once: this runs for every trade
    if (!this.isNewWith(t, n)) return false;
    if (this.lastTs !== undefined) {
      // One long pause (a resume across downtime) must not dominate the estimate for long.
      const gap = Math.min(this.opts.maxSampleMs, Math.max(0, t.ts - this.lastTs));
      const prev = this.expectedIntervalMs;
      this.expectedIntervalMs = prev === undefined ? gap : prev + this.opts.alpha * (gap - prev);
    }
    this.remember(t.id, t.ts, n);
    return true;
  }

  private isNewWith(t: Trade, n: bigint | undefined): boolean {
    if (this.opts.numericIdsIncrease && this.lastNum !== undefined && n !== undefined)
      return n > this.lastNum;
    if (this.recent.has(t.id)) return false;
    // An unseen trade older than the watermark cannot be placed in order any more.
    return this.lastTs === undefined || t.ts >= this.lastTs;
  }

  private remember(id: string, ts: number, n = numericId(id)): void {
    this.lastId = id;
    this.lastTs = this.lastTs === undefined ? ts : Math.max(this.lastTs, ts);
    if (n !== undefined && (this.lastNum === undefined || n > this.lastNum)) this.lastNum = n;
    // Increasing numeric ids are judged by lastNum alone: `recent` is for the other ids.
    if (n !== undefined && this.opts.numericIdsIncrease) return;
    if (!this.recent.has(id)) this.order.push(id);
    this.recent.set(id, ts);
    const floor = this.lastTs - this.opts.windowMs;
    while (this.head < this.order.length) {
      const oldId = this.order[this.head]!;
      if (this.recent.get(oldId)! >= floor && this.recent.size <= this.opts.maxIds) break;
      this.recent.delete(oldId);
      this.head++;
    }
    if (this.head >= 4096 && this.head * 2 >= this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * The exchange's circuit: closed → open after `threshold` consecutive failures (cockatiel's
 * ConsecutiveBreaker counts them) → half-open after `halfOpenAfterMs` on the injected clock (one
 * probe call at a time) → closed on success, open again on failure. cockatiel's own
 * CircuitBreakerPolicy reads Date.now(), so it could not follow a fake clock.
 */
export class ExchangeCircuit {
  state: CircuitStateName = 'closed';
  readonly transitions: { to: CircuitStateName; at: number }[] = [];
  private readonly breaker: ConsecutiveBreaker;
  private probing = false;
  private timer: TimerHandle | undefined;
  private changed = deferred<void>();

  constructor(
    private readonly clock: Clock,
    threshold: number,
    private readonly halfOpenAfterMs: number,
    private readonly onChange: (to: CircuitStateName) => void = () => {},
  ) {
    this.breaker = new ConsecutiveBreaker(threshold);
  }

  /** Resolves true when a call may go out, false if the signal aborted first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal.aborted) return false;
      if (this.state === 'closed') return true;
      if (this.state === 'half-open' && !this.probing) {
        this.probing = true;
        return true;
      }
      await untilOrAbort(this.changed.promise, signal);
    }
  }

  success(): void {
    this.breaker.success();
    this.probing = false;
    if (this.state !== 'closed') this.move('closed');
  }

  /** Gives the half-open probe back unused (the call never went out). */
  release(): void {
    this.probing = false;
  }

  failure(): void {
    this.probing = false;
    if (this.state === 'half-open') this.open();
    else if (this.state === 'closed' && this.breaker.failure()) this.open();
  }

  dispose(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
  }

  private open(): void {
    this.move('open');
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.state === 'open') this.move('half-open');
    }, this.halfOpenAfterMs);
  }

  private move(to: CircuitStateName): void {
    this.state = to;
    this.transitions.push({ to, at: this.clock.now() });
    if (this.transitions.length > 20) this.transitions.shift();
    if (to === 'closed') this.breaker.success();
    this.onChange(to);
    const waiters = this.changed;
    this.changed = deferred<void>();
    waiters.resolve();
  }
}

// ---------------------------------------------------------------- the feed

type RepairReason = 'connect' | 'verify' | 'stale' | 'frame' | 'overflow';
type Wake =
  | { kind: 'data' }
  | { kind: 'error'; err: unknown }
  | { kind: 'interrupt'; reason: 'stale' | 'refresh' }
  | { kind: 'stop' };

interface SymbolRuntime {
  symbol: string;
  track: SymbolTrack;
  /** Clock time of the last valid live trade. */
  lastLiveAt: number | undefined;
  /** Clock time since which live trades are expected (the current connection's start). */
  watchSince: number;
  stale: boolean;
  /** Stale checks of a confirmed-quiet symbol wait 2^quietLevel times longer... */
  quietLevel: number;
  /** ...counted from when REST last confirmed that nothing was missed. */
  verifiedAt: number | undefined;
  repairing: boolean;
  repairAgain: RepairReason | undefined;
  /** After a reconnect repair that saw no live trade: verify the gap on the first one. */
  awaitingProof: boolean;
  /** A stale check found trades over REST that the stream never brought; cleared by a live trade. */
  missedLive: boolean;
  /** An unrepairable gap since `from`, reported with the next trades handed on. */
  pendingGap: { from: number; to?: number; reason: string } | undefined;
  /** Live trades that arrived while repairing, with their arrival sequence number. */
  buffer: { trade: Trade; seq: number }[];
  /** The last ccxt cache entry read (by identity). */
  lastCacheItem: CcxtTrade | undefined;
  delivery: Promise<void>;
  tradesReceived: number;
}

const MAX_BUFFER = 100_000;

export class CcxtFeed {
  private readonly s: Settings;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly ex: CcxtExchange;
  private readonly streaming: boolean;
  private readonly cursor: Cursor;
  private readonly runtimes = new Map<string, SymbolRuntime>();
  private readonly circuit: ExchangeCircuit;
  private readonly restBackoff: ExponentialBackoff<unknown>;
  private readonly dialBackoff: ExponentialBackoff<unknown>;
  private symbols: string[] = [];
  private unknownSymbols: string[] = [];
  private started = false;
  private phase: 'starting' | 'running' = 'starting';
  private signal: AbortSignal = new AbortController().signal;
  private stopper = new AbortController();
  private fatalError: unknown;
  private seq = 0;
  private restLane: Promise<unknown> = Promise.resolve();
  private connected = false;
  private wake: ((w: Wake) => void) | undefined;
  private reconnectPending: 'stale' | 'refresh' | undefined;
  private refreshTimer: TimerHandle | undefined;
  private watchdogTimer: TimerHandle | undefined;
  private readonly repairs = new Set<Promise<void>>();
  private readonly counters = {
    reconnects: 0,
    refreshes: 0,
    staleEvents: 0,
    backfilled: 0,
    malformed: 0,
    malformedFrames: 0,
    frameErrors: 0,
    duplicates: 0,
    restCalls: 0,
    errors: 0,
    gaps: 0,
  };
  private restWeightUsed: number | undefined;
  private queuedTrades = 0;
  private lastError: { message: string; at: number } | null = null;
  private retryAfterUntil = 0;

  constructor(
    config: CcxtFeedConfig,
    private readonly sink: TradeSink,
  ) {
    this.s = resolveSettings(config);
    this.clock = config.clock ?? systemClock;
    this.log = (config.log ?? pino({ level: 'silent' })).child({ feed: config.exchangeId });
    const registry = ccxt as unknown as Record<string, unknown> & { pro: Record<string, unknown> };
    const ProClass = registry.pro[config.exchangeId] as (new (cfg: object) => CcxtExchange) | undefined;
    const RestClass = registry[config.exchangeId] as (new (cfg: object) => CcxtExchange) | undefined;
    if (typeof RestClass !== 'function' || !(registry.exchanges as string[]).includes(config.exchangeId))
      throw new ConfigError(`ccxt feed: unknown ccxt exchange ${JSON.stringify(config.exchangeId)}`);
    const wantWs = this.s.mode !== 'poll' && ProClass !== undefined;
    if (this.s.mode === 'ws' && !wantWs)
      throw new ConfigError(`ccxt feed: ${config.exchangeId} has no websocket support in ccxt.pro`);
    const Cls = wantWs ? ProClass! : RestClass;
    const userOptions = (config.options ?? {}) as { options?: Record<string, unknown> };
    this.ex = new Cls({
      ...userOptions,
      enableRateLimit: true,
      // ccxt only logs frames it cannot parse; count them, and keep ccxt's output in our log.
      log: (...args: unknown[]) => this.onCcxtLog(args),
      options: {
        ...exchangeDefaults(config.exchangeId),
        ...userOptions.options,
        // Our reconnect backoff runs on the Clock; ccxt's own (real-time) delay would stack on it.
        ws: { ...(userOptions.options?.ws as object), backoff: { max: 0 } },
      },
    });
    // ccxt's user hook for "socket open": a new connection needs a gap repair.
    this.ex.onConnected = () => queueMicrotask(() => this.onWsConnected());
    config.configure?.(this.ex);
    this.streaming = wantWs && this.ex.has.watchTradesForSymbols === true && this.ex.has.watchTrades === true;
    if (this.s.mode === 'ws' && !this.streaming)
      throw new ConfigError(`ccxt feed: ${config.exchangeId} cannot watch trades`);
    this.cursor = cursorFor(config.exchangeId);
    this.circuit = new ExchangeCircuit(
      this.clock,
      this.s.breaker.threshold,
      this.s.breaker.halfOpenAfterMs,
      (to) => this.log.warn({ circuit: to }, `circuit ${to}`),
    );
    const backoff = { initialDelay: this.s.reconnect.initialDelayMs, maxDelay: this.s.reconnect.maxDelayMs };
    this.restBackoff = new ExponentialBackoff(backoff);
    this.dialBackoff = new ExponentialBackoff(backoff);
    for (const symbol of config.symbols) {
      this.runtimes.set(symbol, {
        symbol,
        track: new SymbolTrack(
          { ...this.s.dedupe, alpha: this.s.staleness.alpha, maxSampleMs: this.s.staleness.maxStaleMs },
          config.resume?.[symbol],
        ),
        lastLiveAt: undefined,
        watchSince: this.clock.now(),
        stale: false,
        quietLevel: 0,
        verifiedAt: undefined,
        repairing: false,
        repairAgain: undefined,
        awaitingProof: false,
        missedLive: false,
        pendingGap: undefined,
        buffer: [],
        lastCacheItem: undefined,
        delivery: Promise.resolve(),
        tradesReceived: 0,
      });
    }
  }

  /** Runs until `signal` aborts. Exchange trouble never rejects it; a failing sink does. */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) throw new Error('CcxtFeed.start called twice');
    this.started = true;
    const onAbort = () => this.stopper.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.signal = this.stopper.signal;
    this.signal.addEventListener('abort', () => this.wake?.({ kind: 'stop' }), { once: true });
    if (signal.aborted) this.stopper.abort();
    try {
      await this.loadMarkets();
      if (!this.stopped) {
        this.phase = 'running';
        this.scheduleWatchdog();
        if (this.streaming) await this.streamLoop();
        else await this.pollLoop();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.stopper.abort();
      await this.shutdown();
    }
    if (this.fatalError !== undefined) throw this.fatalError;
  }

  health(): FeedHealth {
    const now = this.clock.now();
    const symbols: Record<string, SymbolHealth> = {};
    for (const rt of this.runtimes.values()) {
      symbols[rt.symbol] = {
        lastTradeTs: rt.track.lastTs ?? null,
        lastTradeAgeMs: rt.lastLiveAt === undefined ? null : now - rt.lastLiveAt,
        expectedIntervalMs: rt.track.expectedIntervalMs ?? null,
        staleAfterMs: this.staleAfterMs(rt),
        stale: rt.stale || rt.missedLive,
        tradesReceived: rt.tradesReceived,
        state: this.symbolState(rt),
      };
    }
    return {
      exchange: this.ex.id,
      mode: this.phase === 'starting' ? 'starting' : this.streaming ? 'ws' : 'poll',
      connected: this.connected,
      circuit: this.circuit.state,
      circuitTransitions: [...this.circuit.transitions],
      ...this.counters,
      queuedTrades: this.queuedTrades,
      restWeightUsed: this.restWeightUsed ?? this.counters.restCalls,
      lastError: this.lastError,
      retryAfterUntil: this.retryAfterUntil > now ? this.retryAfterUntil : null,
      unknownSymbols: [...this.unknownSymbols],
      symbols,
    };
  }

  // ------------------------------------------------------------ start-up and shutdown

  private get stopped(): boolean {
    return this.signal.aborted;
  }

  private async loadMarkets(): Promise<void> {
    let attempt = 0;
    // A failed loadMarkets stays cached in ccxt as a rejected promise: retries must reload.
    const ok = await this.rest(
      'loadMarkets',
      () => this.ex.loadMarkets(attempt++ > 0),
      Number.POSITIVE_INFINITY, // nothing works without markets: keep trying
    );
    if (!ok) return;
    const markets = this.ex.markets ?? {};
    this.symbols = [...this.runtimes.keys()].filter((s) => s in markets);
    this.unknownSymbols = [...this.runtimes.keys()].filter((s) => !(s in markets));
    for (const s of this.unknownSymbols) {
      this.runtimes.delete(s);
      this.noteError(new Error(`unknown symbol ${s} on ${this.ex.id}`));
    }
    if (this.symbols.length === 0) {
      this.log.error({ unknown: this.unknownSymbols }, 'no known symbol to follow');
      await untilOrAbort(new Promise(() => {}), this.signal);
    }
  }

  private async shutdown(): Promise<void> {
    if (this.watchdogTimer) this.clock.clearTimeout(this.watchdogTimer);
    if (this.refreshTimer) this.clock.clearTimeout(this.refreshTimer);
    this.circuit.dispose();
    this.connected = false;
    await this.closeSockets().catch(() => {});
    await this.ex.close().catch(() => {});
    await Promise.allSettled([...this.repairs]);
    await Promise.allSettled([...this.runtimes.values()].map((rt) => rt.delivery));
  }

  private fatal(err: unknown): void {
    if (this.fatalError === undefined) this.fatalError = err;
    this.log.error({ err }, 'trade sink failed; stopping the feed');
    this.stopper.abort();
  }

  // ------------------------------------------------------------ REST: one lane, gated, retried

  /**
   * Runs `call` when the exchange may be asked (no Retry-After pending, circuit allows), one
   * call at a time. Transient failures (ccxt NetworkError: 5xx, timeouts, refused connections)
   * count against the circuit and are retried with backoff until the feed stops; other errors
   * (a request the exchange rejects) are retried `permanentAttempts` times, then thrown.
   * Undefined when the feed stopped.
   */
  private rest<T>(what: string, call: () => Promise<T>, permanentAttempts = 3): Promise<T | undefined> {
    const run = this.restLane.then(async () => {
      let backoff: IBackoff<unknown> | undefined;
      let permanentFailures = 0;
      while (!this.stopped) {
        if (!(await this.gate())) return undefined;
        this.counters.restCalls++;
        try {
          const result = await call();
          this.circuit.success();
          this.noteWeight();
          return result;
        } catch (err) {
          if (this.stopped) return undefined;
          this.noteError(err, what);
          if (this.isRateLimit(err)) {
            this.honourRetryAfter(); // the gate waits it out; not a health failure
            this.circuit.release();
            continue;
          }
          if (err instanceof ccxt.NetworkError) this.circuit.failure();
          else {
            this.circuit.release();
            if (++permanentFailures >= permanentAttempts) throw err;
          }
          backoff = backoff ? backoff.next(undefined) : this.restBackoff.next();
          await this.sleep(backoff.duration);
        }
      }
      return undefined;
    });
    this.restLane = run.catch(() => {});
    return run;
  }

  /** Waits until a request may go out; false when the feed stopped meanwhile. */
  private async gate(): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      const wait = this.retryAfterUntil - this.clock.now();
      if (wait > 0) {
        await this.sleep(wait);
        continue;
      }
      if (!(await this.circuit.acquire(this.signal))) return false;
      if (this.retryAfterUntil <= this.clock.now()) return true;
      this.circuit.release(); // a Retry-After came in while we waited
    }
  }

  private isRateLimit(err: unknown): boolean {
    return err instanceof ccxt.DDoSProtection || err instanceof ccxt.RateLimitExceeded;
  }

  /** Reads Retry-After (seconds or an HTTP date) of the answer that just failed. */
  private honourRetryAfter(): void {
    const raw = this.ex.last_response_headers?.['Retry-After'];
    const now = this.clock.now();
    let waitMs = this.s.rateLimitFallbackMs;
    if (raw !== undefined) {
      const secs = Number(raw);
      if (Number.isFinite(secs) && secs >= 0) waitMs = secs * 1000;
      else if (Number.isFinite(Date.parse(raw))) waitMs = Math.max(0, Date.parse(raw) - Date.now());
    }
    this.retryAfterUntil = Math.max(this.retryAfterUntil, now + waitMs);
    this.log.warn({ retryAfterMs: waitMs }, 'rate limited by the exchange; holding every request');
  }

  private noteWeight(): void {
    const h = this.ex.last_response_headers ?? {};
    const key = Object.keys(h).find((k) => /^x-mbx-used-weight(-1m)?$/i.test(k));
    const weight = key === undefined ? Number.NaN : Number(h[key]);
    if (Number.isFinite(weight)) this.restWeightUsed = weight;
  }

  private noteError(err: unknown, what?: string): void {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.counters.errors++;
    this.lastError = { message: what ? `${what}: ${message}` : message, at: this.clock.now() };
    this.log.warn({ err: message, what }, 'exchange call failed');
  }

  // ------------------------------------------------------------ websocket streaming

  private async streamLoop(): Promise<void> {
    const watchSymbols = [...this.symbols];
    let failures = 0; // consecutive failed watches without data in between
    let backoff: IBackoff<unknown> | undefined;
    let mustDial = true;
    while (!this.stopped) {
      if (mustDial) {
        if (!(await this.gate())) break;
        this.reconnectPending = undefined; // the dial about to happen is the reconnect
      }
      const outcome = await this.nextWake(watchSymbols);
      // A dial holds the half-open probe: onWsConnected or a NetworkError below gives the verdict.
      if (mustDial) this.circuit.release();
      if (outcome.kind === 'stop') break;
      if (outcome.kind === 'data') {
        mustDial = false;
        failures = 0;
        backoff = undefined;
        this.readCaches();
        continue;
      }
      // Whatever arrived around the error is good; good data also ends a failure streak.
      if (this.readCaches() > 0) failures = 0;
      if (outcome.kind === 'interrupt') {
        this.reconnectPending = undefined;
        if (outcome.reason === 'refresh') this.counters.refreshes++;
        else failures++; // a dead stream: successive ones back off
        this.log.info({ reason: outcome.reason }, 'reconnecting');
        await this.closeSockets();
      } else if (outcome.err instanceof ccxt.NetworkError) {
        this.noteError(outcome.err, 'websocket');
        this.circuit.failure();
        failures++;
      } else {
        // The socket is still open: ccxt rejected the watch over a frame it could not read.
        this.counters.frameErrors++;
        this.noteError(outcome.err, 'websocket frame');
        failures++;
        this.repairAll('frame');
        if (failures < 3) continue;
        await this.closeSockets(); // keeps failing: start over on a fresh connection
      }
      this.connected = false;
      this.counters.reconnects++;
      mustDial = true;
      let delay = 0; // the first reconnect after a healthy stretch is immediate
      if (failures > 1) {
        backoff = backoff ? backoff.next(undefined) : this.dialBackoff.next();
        delay = backoff.duration;
      }
      await this.sleep(delay);
    }
  }

  /**
   * One watch call, or an earlier wake-up by a reconnect request or stop. (A fresh promise per
   * call: racing long-lived promises would add a reaction to them on every trade.)
   */
  private nextWake(symbols: string[]): Promise<Wake> {
    if (this.stopped) return Promise.resolve({ kind: 'stop' });
    if (this.reconnectPending) return Promise.resolve({ kind: 'interrupt', reason: this.reconnectPending });
    return new Promise<Wake>((resolve) => {
      this.wake = resolve;
      this.ex.watchTradesForSymbols!(symbols).then(
        () => resolve({ kind: 'data' }),
        (err: unknown) => resolve({ kind: 'error', err }),
      );
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** ccxt opened a socket: restart stale clocks, schedule the refresh, repair every symbol. */
  private onWsConnected(): void {
    if (this.stopped) return;
    this.connected = true;
    this.circuit.success();
    const now = this.clock.now();
    for (const rt of this.runtimes.values()) {
      rt.watchSince = now;
      rt.stale = false;
    }
    if (this.refreshTimer) this.clock.clearTimeout(this.refreshTimer);
    if (this.s.refreshAfterMs > 0) {
      this.refreshTimer = this.clock.setTimeout(
        () => this.requestReconnect('refresh'),
        this.s.refreshAfterMs,
      );
    }
    for (const rt of this.runtimes.values()) {
      // Without a watermark there is nothing to repair from: the stream is the start.
      if (rt.track.lastTs !== undefined) this.repair(rt, 'connect');
    }
  }

  private requestReconnect(reason: 'stale' | 'refresh'): void {
    if (this.reconnectPending || this.stopped) return;
    this.reconnectPending = reason;
    this.wake?.({ kind: 'interrupt', reason });
  }

  /**
   * Closes every ccxt socket and waits until ccxt has forgotten it. terminate() rather than a
   * close handshake: the socket may be dead. Waiting matters: ccxt deletes a closed client by
   * url, so a close landing after the next dial would orphan the new connection.
   */
  private async closeSockets(): Promise<void> {
    const clients = Object.values(this.ex.clients ?? {}).filter((c): c is CcxtWsClient => c !== undefined);
    await Promise.all(
      clients.map(async (client) => {
        const alreadyClosed = client.connection?.readyState === 3; // no 'close' event would come
        const closed = client.close();
        client.connection?.terminate?.();
        if (!alreadyClosed) await closed;
        if (this.ex.clients?.[client.url] === client) delete this.ex.clients[client.url];
      }),
    );
  }

  /** Takes every not-yet-read trade out of ccxt's per-symbol caches; returns how many were valid. */
  private readCaches(): number {
    let valid = 0;
    for (const rt of this.runtimes.values()) {
      const cache = this.ex.trades?.[rt.symbol];
      if (!cache || cache.length === 0) continue;
      let from = cache.length - 1;
      while (from >= 0 && cache[from] !== rt.lastCacheItem) from--;
      if (
        from < 0 &&
        rt.lastCacheItem !== undefined &&
        cache.maxSize !== undefined &&
        cache.length >= cache.maxSize
      ) {
        // Our last read entry was pushed out: more trades came than the cache holds.
        this.log.warn({ symbol: rt.symbol }, 'ccxt trade cache overflowed; repairing');
        this.repair(rt, 'overflow');
      }
      const fresh: CcxtTrade[] = []; // (slice would construct another ArrayCache)
      for (let i = from + 1; i < cache.length; i++) fresh.push(cache[i]!);
      rt.lastCacheItem = cache[cache.length - 1];
      if (fresh.length > 0) valid += this.onLive(rt, fresh);
    }
    return valid;
  }

  /** Hands on (or buffers, while repairing) live trades; returns how many were valid. */
  private onLive(rt: SymbolRuntime, raw: CcxtTrade[]): number {
    const trades = inExchangeOrder(this.normaliseAll(raw));
    if (trades.length === 0) return 0;
    rt.lastLiveAt = this.clock.now();
    rt.stale = false;
    rt.missedLive = false;
    rt.quietLevel = 0;
    if (rt.repairing || rt.awaitingProof) {
      for (const trade of trades) {
        if (rt.buffer.length < MAX_BUFFER) rt.buffer.push({ trade, seq: ++this.seq });
        else rt.repairAgain ??= 'overflow'; // REST will bring what the buffer could not hold
      }
      if (rt.awaitingProof && !rt.repairing) {
        rt.awaitingProof = false;
        this.repair(rt, 'verify');
      }
      return trades.length;
    }
    this.handOn(rt, trades, 'live');
    return trades.length;
  }

  // ------------------------------------------------------------ repair and polling

  private repairAll(reason: RepairReason): void {
    for (const rt of this.runtimes.values()) if (rt.track.lastTs !== undefined) this.repair(rt, reason);
  }

  /** Starts (or, if one runs, re-arms) the repair of one symbol. */
  private repair(rt: SymbolRuntime, reason: RepairReason): void {
    if (this.stopped) return;
    if (rt.repairing) {
      rt.repairAgain ??= reason;
      return;
    }
    rt.repairing = true;
    const task = this.runRepair(rt, reason)
      .catch((err) => this.noteError(err, `repair ${rt.symbol}`))
      .finally(() => this.repairs.delete(task));
    this.repairs.add(task);
  }

  private async runRepair(rt: SymbolRuntime, first: RepairReason): Promise<void> {
    try {
      await this.repairLoop(rt, first);
    } catch (err) {
      // The exchange refuses the repair for good: what the stream brings next follows a hole.
      if (!this.stopped && rt.track.lastTs !== undefined)
        rt.pendingGap ??= { from: rt.track.lastTs, reason: `repair failed: ${errorText(err)}` };
      throw err;
    } finally {
      rt.repairing = false;
      rt.repairAgain = undefined;
      // Live trades buffered after the last page (or before a failure) still wait: hand them on.
      if (rt.buffer.length > 0)
        this.handOn(
          rt,
          rt.buffer.splice(0).map((b) => b.trade),
          'live',
        );
    }
  }

  private async repairLoop(rt: SymbolRuntime, first: RepairReason): Promise<void> {
    let reason: RepairReason | undefined = first;
    while (reason !== undefined && !this.stopped) {
      const needsProof = reason === 'connect' || reason === 'verify';
      const found = await this.pageForward(rt, 'repair', needsProof);
      if (found === undefined) break; // stopped
      // Hand on the live trades that waited, minus what REST already brought.
      const waiting = rt.buffer.splice(0).map((b) => b.trade);
      const sawLive = waiting.length > 0;
      this.handOn(rt, waiting, 'live');
      if (needsProof && !sawLive) rt.awaitingProof = true;
      if (reason === 'stale') {
        if (found > 0) {
          this.log.warn(
            { symbol: rt.symbol, missed: found },
            'stream missed trades that REST has; reconnecting',
          );
          rt.missedLive = true;
          this.requestReconnect('stale');
        } else {
          // A quiet market, not a dead feed: count this as a sign of life, look again later.
          rt.quietLevel++;
          rt.verifiedAt = this.clock.now();
          rt.stale = false;
          rt.missedLive = false;
        }
      }
      reason = rt.repairAgain;
      rt.repairAgain = undefined;
    }
  }

  /**
   * Pages fetchTrades forward from the symbol's watermark, handing new trades on as `source`,
   * until caught up. REST stops where it meets the first buffered live trade: from there on the
   * stream is proven continuous and the buffer delivers. With `needsProof` a repair that does not
   * meet the stream also needs a page requested after the first live trade arrived (or no live
   * trade at all). Returns how many new trades it found; undefined when the feed stopped.
   */
  private async pageForward(
    rt: SymbolRuntime,
    source: TradeSource,
    needsProof: boolean,
  ): Promise<number | undefined> {
    const limit = this.s.repair.pageLimit;
    let found = 0;
    for (let page = 0; page < this.s.repair.maxPages; page++) {
      const requestSeq = ++this.seq;
      const raw = await this.rest(`fetchTrades ${rt.symbol}`, () => this.fetchPage(rt, limit));
      if (raw === undefined) return undefined;
      const fresh: Trade[] = [];
      let metStream = false;
      for (const trade of inExchangeOrder(this.normaliseAll(raw))) {
        const live = rt.buffer[0]?.trade;
        if (live && this.reaches(trade, live)) {
          metStream = true;
          break;
        }
        const skipped = this.s.consecutiveIds ? this.idsSkipped(rt, trade) : 0n;
        const fromTs = rt.track.lastTs;
        if (rt.track.accept(trade)) {
          if (skipped > 0n && fromTs !== undefined && rt.pendingGap === undefined) {
            // The exchange no longer has the trades between the watermark and this one.
            rt.pendingGap = {
              from: fromTs,
              to: trade.ts,
              reason: `history: ${skipped} trade${skipped === 1n ? '' : 's'} before id ${trade.id} no longer available`,
            };
          }
          fresh.push(trade);
        } else this.counters.duplicates++;
      }
      if (fresh.length > 0) {
        found += fresh.length;
        this.deliver(rt, fresh, source);
      }
      if (metStream) return found;
      const caughtUp = raw.length < limit || fresh.length === 0;
      const proven = !needsProof || rt.buffer.length === 0 || rt.buffer[0]!.seq < requestSeq;
      if (caughtUp && proven) return found;
      if (raw.length >= limit && fresh.length === 0) {
        this.log.warn({ symbol: rt.symbol }, 'a full page brought nothing new; giving up this repair');
        return found;
      }
    }
    this.log.warn({ symbol: rt.symbol, pages: this.s.repair.maxPages }, 'repair stopped at its page limit');
    // Live trades are handed on next: what lies between is not repaired.
    if (source === 'repair' && rt.track.lastTs !== undefined)
      rt.pendingGap ??= { from: rt.track.lastTs, reason: 'repair stopped at its page limit' };
    return found;
  }

  /** How many ids lie between the watermark and `t` (0 when `t` follows it or ids are not numeric). */
  private idsSkipped(rt: SymbolRuntime, t: Trade): bigint {
    const last = rt.track.lastId === undefined ? undefined : numericId(rt.track.lastId);
    const n = numericId(t.id);
    if (last === undefined || n === undefined || n <= last + 1n) return 0n;
    return n - last - 1n;
  }

  /** Whether REST trade `t` is (or is past) the live trade `live`. */
  private reaches(t: Trade, live: Trade): boolean {
    if (t.id === live.id) return true;
    const a = numericId(t.id);
    const b = numericId(live.id);
    if (this.s.dedupe.numericIdsIncrease && a !== undefined && b !== undefined) return a >= b;
    return t.ts > live.ts;
  }

  /** One fetchTrades page after the watermark, in the exchange's most exact cursor. */
  private async fetchPage(rt: SymbolRuntime, limit: number): Promise<CcxtTrade[]> {
    const { lastId, lastTs } = rt.track;
    if (lastTs === undefined) return this.ex.fetchTrades(rt.symbol, undefined, limit);
    const lastNum = lastId === undefined ? undefined : numericId(lastId);
    if (this.cursor === 'binance-fromId' && lastNum !== undefined) {
      // aggTrades by id: exact, and immune to the 1 h window ccxt adds to `since`.
      return this.ex.fetchTrades(rt.symbol, undefined, limit, { fromId: String(lastNum + 1n) });
    }
    if (this.cursor === 'kraken-ns') {
      // ccxt turns `since` into whole seconds and then filters by the ms value, which can empty
      // a full page; Kraken's nanosecond cursor has no such loss.
      return this.ex.fetchTrades(rt.symbol, undefined, limit, { since: String(BigInt(lastTs) * 1_000_000n) });
    }
    return this.ex.fetchTrades(rt.symbol, lastTs, limit);
  }

  private async pollLoop(): Promise<void> {
    this.connected = true;
    while (!this.stopped) {
      for (const rt of this.runtimes.values()) {
        if (this.stopped) break;
        const before = rt.tradesReceived;
        try {
          if ((await this.pageForward(rt, 'live', false)) === undefined) break;
        } catch (err) {
          this.noteError(err, `poll ${rt.symbol}`); // that symbol's turn is over; the next poll retries
        }
        if (rt.tradesReceived > before) {
          rt.lastLiveAt = this.clock.now();
          rt.stale = false;
        }
      }
      await this.sleep(this.s.pollIntervalMs);
    }
  }

  // ------------------------------------------------------------ staleness

  private staleAfterMs(rt: SymbolRuntime): number {
    const { k, minStaleMs, maxStaleMs, maxBackoffMs } = this.s.staleness;
    const expected = rt.track.expectedIntervalMs;
    const base =
      expected === undefined ? maxStaleMs : Math.min(maxStaleMs, Math.max(minStaleMs, k * expected));
    return Math.min(Math.max(base, maxBackoffMs), base * 2 ** rt.quietLevel);
  }

  private scheduleWatchdog(): void {
    this.watchdogTimer = this.clock.setTimeout(() => {
      this.watchdogTimer = undefined;
      if (this.stopped) return;
      this.checkStaleness();
      this.scheduleWatchdog();
    }, this.s.staleness.checkEveryMs);
  }

  private checkStaleness(): void {
    if (!this.connected) return; // the connection loop owns that
    const now = this.clock.now();
    for (const rt of this.runtimes.values()) {
      if (rt.repairing) continue;
      const since = Math.max(
        rt.lastLiveAt ?? Number.NEGATIVE_INFINITY,
        rt.verifiedAt ?? Number.NEGATIVE_INFINITY,
        rt.watchSince,
      );
      const stale = now - since >= this.staleAfterMs(rt);
      if (!stale) {
        rt.stale = false;
        continue;
      }
      if (rt.stale) continue;
      rt.stale = true;
      this.counters.staleEvents++;
      this.log.warn(
        { symbol: rt.symbol, silentMs: now - since, staleAfterMs: this.staleAfterMs(rt) },
        'symbol stale',
      );
      if (this.streaming) this.repair(rt, 'stale');
    }
  }

  private symbolState(rt: SymbolRuntime): SymbolFeedState {
    // Blocked: REST may not be asked (repairs and polls wait); the stream itself may still flow.
    const blocked = this.circuit.state === 'open' || this.retryAfterUntil > this.clock.now();
    if (!this.connected) return 'backoff';
    if (!this.streaming) return blocked ? 'backoff' : rt.stale ? 'stale' : 'polling';
    if (rt.repairing) return blocked ? 'backoff' : 'repairing';
    return rt.stale || rt.missedLive ? 'stale' : 'streaming';
  }

  // ------------------------------------------------------------ handing trades on

  private normaliseAll(raw: CcxtTrade[]): Trade[] {
    const out: Trade[] = [];
    for (const t of raw) {
      const n = normaliseTrade(t);
      if ('trade' in n) out.push(n.trade);
      else {
        this.counters.malformed++;
        this.log.debug({ problem: n.problem }, 'malformed trade dropped');
      }
    }
    return out;
  }

  /** Dedupes against the watermark and delivers what is new. */
  private handOn(rt: SymbolRuntime, trades: Trade[], source: TradeSource): void {
    const fresh: Trade[] = [];
    for (const t of trades) {
      if (rt.track.accept(t)) fresh.push(t);
      else this.counters.duplicates++;
    }
    if (fresh.length > 0) this.deliver(rt, fresh, source);
  }

  /** Queues already-accepted trades to the sink, strictly one call after another per symbol. */
  private deliver(rt: SymbolRuntime, trades: Trade[], source: TradeSource): void {
    rt.tradesReceived += trades.length;
    if (source === 'repair') this.counters.backfilled += trades.length;
    let gap: FeedGap | undefined;
    if (rt.pendingGap) {
      const { from, to = trades[0]!.ts, reason } = rt.pendingGap;
      gap = { from, to: Math.max(to, from + 1), reason };
      rt.pendingGap = undefined;
      this.counters.gaps++;
      this.log.warn({ symbol: rt.symbol, gap }, 'unrepairable gap');
    }
    this.queuedTrades += trades.length;
    rt.delivery = rt.delivery.then(async () => {
      if (this.fatalError !== undefined) return;
      try {
        await this.sink.onTrades(rt.symbol, trades, source);
        this.queuedTrades -= trades.length;
        if (gap) await this.sink.onGap?.(rt.symbol, gap);
      } catch (err) {
        this.fatal(err);
      }
    });
  }

  // ------------------------------------------------------------ small helpers

  private onCcxtLog(args: unknown[]): void {
    const text = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
    if (text.includes('onMessage JSON.parse')) {
      this.counters.malformedFrames++;
      this.log.warn({ ccxt: text.slice(0, 300) }, 'unparsable frame');
    } else {
      this.log.debug({ ccxt: text.slice(0, 300) }, 'ccxt');
    }
  }

  /** Sleeps on the injected clock; wakes early when the feed stops. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return sleep(this.clock, ms, this.signal);
  }
}

/**
 * Trades in exchange order. ccxt's parseTrades sorts what one call parsed (a REST page, a
 * websocket snapshot or a multi-trade frame) by timestamp and then by id as a *string*: within
 * one millisecond '10000' sorts before '9999', and the feed would take the trades behind that
 * boundary for already seen. Numeric ids are put back in numeric order (cheap when in order).
 */
export function inExchangeOrder(trades: Trade[]): Trade[] {
  let inOrder = true;
  for (let i = 1; i < trades.length && inOrder; i++) {
    const a = trades[i - 1]!;
    const b = trades[i]!;
    inOrder = a.ts < b.ts || (a.ts === b.ts && compareNumericIds(a.id, b.id) <= 0);
  }
  if (inOrder || !trades.every((t) => CANONICAL_ID.test(t.id))) return trades;
  return [...trades].sort((a, b) => a.ts - b.ts || compareNumericIds(a.id, b.id));
}

const CANONICAL_ID = /^(?:0|[1-9]\d{0,29})$/;

/** Orders decimal integer strings without leading zeros by value. */
function compareNumericIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Resolves when `p` settles or `signal` aborts, whichever is first, leaving no listener behind. */
function untilOrAbort(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      () => {},
    );
  });
}
