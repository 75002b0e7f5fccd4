/**
 * What the parts of one ccxt feed share: the instance, clock, log and settings, every symbol's
 * runtime, the counters, the connection state, and the hand-off of trades to the sink (strictly
 * one call after another per symbol). The REST lane, the websocket loop, the repairs and the
 * watchdog each hold this one object.
 */
import { type Clock, sleep } from '../../../core/clock.ts';
import type { Logger } from '../../../core/log.ts';
import type { Trade } from '../../../core/protocol/index.ts';
import type { FeedSettings } from './settings.ts';
import { nextPhase, type PhaseEvent, type SymbolPhase } from './symbol-phase.ts';
import { normaliseTrade, type SymbolTrack } from './symbol-track.ts';
import type {
  CcxtExchange,
  CcxtTrade,
  ConnectionHealth,
  ConnectionState,
  FeedCounters,
  FeedGap,
  TradeSink,
  TradeSource,
} from './types.ts';

/** One symbol's live state inside the feed. */
export interface SymbolRuntime {
  symbol: string;
  track: SymbolTrack;
  phase: SymbolPhase;
  /** Clock time of the last valid live trade. */
  lastLiveAt: number | undefined;
  /** Clock time since which live trades are expected (the current connection's start). */
  watchSince: number;
  /** Stale checks of a confirmed-quiet symbol wait 2^quietLevel times longer... */
  quietLevel: number;
  /** ...counted from when REST last confirmed that nothing was missed. */
  verifiedAt: number | undefined;
  /** An unrepairable gap since `from`, reported with the next trades handed on. */
  pendingGap: { from: number; to?: number; reason: string } | undefined;
  /** Live trades that arrived while buffering, with their arrival sequence number. */
  buffer: { trade: Trade; seq: number }[];
  /** The last ccxt cache entry read (by identity). */
  lastCacheItem: CcxtTrade | undefined;
  delivery: Promise<void>;
  tradesReceived: number;
}

export class FeedContext {
  readonly runtimes = new Map<string, SymbolRuntime>();
  readonly counters: FeedCounters = {
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
  lastError: { message: string; at: number } | null = null;
  queuedTrades = 0;
  /** A websocket is open (or, polling, the loop runs). */
  connected = false;
  fatalError: unknown;
  private readonly stopper = new AbortController();
  private seq = 0;
  private link: ConnectionHealth;

  constructor(
    readonly ex: CcxtExchange,
    readonly clock: Clock,
    readonly log: Logger,
    readonly s: FeedSettings,
    private readonly sink: TradeSink,
  ) {
    this.link = { state: 'connecting', since: clock.now(), lastError: null };
  }

  /** Aborts when the feed stops (its owner's signal, or a failing sink). */
  get signal(): AbortSignal {
    return this.stopper.signal;
  }

  get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  stop(): void {
    this.stopper.abort();
  }

  /** Sleeps on the injected clock; wakes early when the feed stops. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return sleep(this.clock, ms, this.signal);
  }

  /** Resolves when the feed stops. */
  untilStopped(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  /** ccxt's own log lines: frames it could not parse are counted, the rest kept at debug. */
  onCcxtLog(args: unknown[]): void {
    const text = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
    if (text.includes('onMessage JSON.parse')) {
      this.counters.malformedFrames++;
      this.log.warn({ ccxt: text.slice(0, 300) }, 'unparsable frame');
    } else {
      this.log.debug({ ccxt: text.slice(0, 300) }, 'ccxt');
    }
  }

  /** The next arrival sequence number (orders REST requests against buffered live trades). */
  nextSeq(): number {
    return ++this.seq;
  }

  /** Applies a phase event to a symbol; returns whether it started a repair. */
  applyPhase(rt: SymbolRuntime, e: PhaseEvent): boolean {
    const before = rt.phase;
    rt.phase = nextPhase(before, e);
    return before.kind !== 'repairing' && rt.phase.kind === 'repairing';
  }

  noteError(err: unknown, what?: string): void {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.counters.errors++;
    this.lastError = { message: what ? `${what}: ${message}` : message, at: this.clock.now() };
    if (this.link.state !== 'connected') this.link = { ...this.link, lastError: this.lastError };
    this.log.warn({ err: message, what }, 'exchange call failed');
  }

  setConnection(state: ConnectionState): void {
    if (this.link.state === state) return;
    this.link = {
      state,
      since: this.clock.now(),
      lastError: state === 'connected' ? null : this.link.lastError,
    };
    if (state === 'unreachable')
      this.log.error({ lastError: this.link.lastError?.message }, 'exchange unreachable');
  }

  connection(): ConnectionHealth {
    return { ...this.link };
  }

  fatal(err: unknown): void {
    if (this.fatalError === undefined) this.fatalError = err;
    this.log.error({ err }, 'trade sink failed; stopping the feed');
    this.stop();
  }

  normaliseAll(raw: CcxtTrade[]): Trade[] {
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
  handOn(rt: SymbolRuntime, trades: Trade[], source: TradeSource): void {
    const fresh: Trade[] = [];
    for (const t of trades) {
      if (rt.track.accept(t)) fresh.push(t);
      else this.counters.duplicates++;
    }
    if (fresh.length > 0) this.deliver(rt, fresh, source);
  }

  /** Queues already-accepted trades to the sink, strictly one call after another per symbol. */
  deliver(rt: SymbolRuntime, trades: Trade[], source: TradeSource): void {
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
}
