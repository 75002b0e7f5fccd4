/**
 * The live trades of one exchange through ccxt, NATS-agnostic: normalised, deduplicated and in
 * exchange order per symbol, handed to a sink. This module is the feed's lifecycle (start,
 * markets, the streaming or polling loop, shutdown) and its health; the parts live beside it:
 * - ccxt-instance.ts: the ccxt instance from the exchanges file (urls, proxies, CA, plain ws://);
 * - settings.ts: the file's options plus internal tuning and per-exchange-family settings;
 * - symbol-track.ts / symbol-phase.ts: per-symbol dedupe, rate estimate and feed state;
 * - rest-lane.ts: REST one call at a time behind the circuit and Retry-After;
 * - stream-loop.ts: the websocket loop; repairs.ts: REST repair paging (and polling);
 * - staleness.ts: dead-feed detection.
 *
 * A hole it cannot repair is reported to the sink (`onGap`) right after the trades that end it:
 * REST skipping ids where ids are consecutive (Binance aggregate ids: the exchange no longer has
 * that history), a repair the exchange keeps refusing, a repair stopped at its page limit.
 * All delays run on the injected Clock. A failed `loadMarkets()` stays cached in ccxt as a
 * rejected promise, so retries pass reload=true.
 */
import { pino } from 'pino';
import { type Clock, systemClock } from '../../../core/clock.ts';
import { AlreadyStartedError, ConfigError } from '../../../core/errors.ts';
import type { CcxtExchangeOptions } from '../../../core/exchanges-config.ts';
import type { Logger } from '../../../core/log.ts';
import { createCcxtInstance, prepareTransport } from './ccxt-instance.ts';
import { FeedContext } from './feed-context.ts';
import { Repairs } from './repairs.ts';
import { RestLane } from './rest-lane.ts';
import { type FeedSettings, feedSettings } from './settings.ts';
import { Watchdog } from './staleness.ts';
import { StreamLoop } from './stream-loop.ts';
import { INITIAL_PHASE, isStale, symbolFeedState } from './symbol-phase.ts';
import { SymbolTrack } from './symbol-track.ts';
import type { CcxtExchange, FeedHealth, ResumePoint, SymbolHealth, TradeSink } from './types.ts';

export interface CcxtFeedConfig {
  /** The exchange's ccxt entry, as the exchanges-file schema parsed it (`parseStoredOptions`). */
  exchange: CcxtExchangeOptions;
  /** Unified ccxt symbols, e.g. 'BTC/USDT'. */
  symbols: readonly string[];
  /** Per symbol: the last trade already handled; the feed first repairs from there. */
  resume?: Record<string, ResumePoint>;
  /** apiKey/secret/password for ccxt (read from the environment by the actor). */
  credentials?: Record<string, string>;
  /** Runs on the new ccxt instance before any call (tests only: the file reaches every option). */
  configure?: (exchange: CcxtExchange) => void;
  clock?: Clock;
  log?: Logger;
}

export class CcxtFeed {
  private readonly ctx: FeedContext;
  private readonly options: CcxtExchangeOptions;
  private readonly streaming: boolean;
  private readonly rest: RestLane;
  private readonly repairs: Repairs;
  private readonly stream: StreamLoop;
  private readonly watchdog: Watchdog;
  private unknownSymbols: string[] = [];
  private started = false;
  private phase: 'starting' | 'running' = 'starting';

  constructor(config: CcxtFeedConfig, sink: TradeSink) {
    const s: FeedSettings = feedSettings(config.exchange);
    if (config.symbols.length === 0) throw new ConfigError('ccxt feed: symbols must not be empty');
    if (new Set(config.symbols).size !== config.symbols.length)
      throw new ConfigError('ccxt feed: symbols must be distinct');
    const clock = config.clock ?? systemClock;
    const log = (config.log ?? pino({ level: 'silent' })).child({ feed: s.exchangeId });
    this.options = config.exchange;
    const { ex, streaming } = createCcxtInstance(config.exchange, {
      credentials: config.credentials,
      // ccxt logs only once calls run, by when the context exists.
      log: (...args: unknown[]) => this.ctx.onCcxtLog(args),
      configure: config.configure,
    });
    const ctx = new FeedContext(ex, clock, log, s, sink);
    this.ctx = ctx;
    this.streaming = streaming;
    this.rest = new RestLane(ctx);
    this.repairs = new Repairs(ctx, this.rest, (reason) => this.stream.requestReconnect(reason));
    this.stream = new StreamLoop(ctx, this.rest, this.repairs);
    this.watchdog = new Watchdog(ctx, this.repairs, streaming);
    for (const symbol of config.symbols) {
      ctx.runtimes.set(symbol, {
        symbol,
        track: new SymbolTrack(
          { ...s.dedupe, alpha: s.staleness.alpha, maxSampleMs: s.staleness.maxStaleMs },
          config.resume?.[symbol],
        ),
        phase: INITIAL_PHASE,
        lastLiveAt: undefined,
        watchSince: clock.now(),
        quietLevel: 0,
        verifiedAt: undefined,
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
    if (this.started) throw new AlreadyStartedError('CcxtFeed');
    this.started = true;
    const ctx = this.ctx;
    const onAbort = () => ctx.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) ctx.stop();
    try {
      await prepareTransport(ctx.ex, this.options);
      const symbols = await this.loadMarkets();
      if (symbols && !ctx.stopped) {
        this.phase = 'running';
        this.watchdog.start();
        if (this.streaming) await this.stream.run(symbols);
        else {
          ctx.connected = true;
          ctx.setConnection('connected');
          await this.repairs.poll();
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      ctx.stop();
      await this.shutdown();
    }
    if (ctx.fatalError !== undefined) throw ctx.fatalError;
  }

  health(): FeedHealth {
    const ctx = this.ctx;
    const now = ctx.clock.now();
    const feedState = { connected: ctx.connected, streaming: this.streaming, blocked: this.rest.blocked };
    const symbols: Record<string, SymbolHealth> = {};
    for (const rt of ctx.runtimes.values()) {
      symbols[rt.symbol] = {
        lastTradeTs: rt.track.lastTs ?? null,
        lastTradeAgeMs: rt.lastLiveAt === undefined ? null : now - rt.lastLiveAt,
        expectedIntervalMs: rt.track.expectedIntervalMs ?? null,
        staleAfterMs: this.watchdog.staleAfterMs(rt),
        stale: isStale(rt.phase),
        tradesReceived: rt.tradesReceived,
        state: symbolFeedState(rt.phase, feedState),
      };
    }
    return {
      exchange: ctx.ex.id,
      mode: this.phase === 'starting' ? 'starting' : this.streaming ? 'ws' : 'poll',
      connected: ctx.connected,
      connection: ctx.connection(),
      circuit: this.rest.circuit.state,
      circuitTransitions: [...this.rest.circuit.transitions],
      ...ctx.counters,
      queuedTrades: ctx.queuedTrades,
      restWeightUsed: this.rest.weightUsed ?? ctx.counters.restCalls,
      lastError: ctx.lastError,
      retryAfterUntil: this.rest.retryAfterUntil > now ? this.rest.retryAfterUntil : null,
      unknownSymbols: [...this.unknownSymbols],
      symbols,
    };
  }

  /** Loads markets (retrying until it works or the feed stops); the symbols to follow. */
  private async loadMarkets(): Promise<string[] | undefined> {
    const ctx = this.ctx;
    let attempt = 0;
    const ok = await this.rest.run(
      'loadMarkets',
      () => ctx.ex.loadMarkets(attempt++ > 0), // a failed load stays cached in ccxt: reload
      Number.POSITIVE_INFINITY, // nothing works without markets: keep trying
    );
    if (!ok) return undefined;
    const markets = ctx.ex.markets ?? {};
    const all = [...ctx.runtimes.keys()];
    this.unknownSymbols = all.filter((s) => !(s in markets));
    for (const s of this.unknownSymbols) {
      ctx.runtimes.delete(s);
      ctx.noteError(`unknown symbol ${s} on ${ctx.ex.id}`);
    }
    const symbols = all.filter((s) => s in markets);
    if (symbols.length === 0) {
      ctx.log.error({ unknown: this.unknownSymbols }, 'no known symbol to follow');
      await ctx.untilStopped();
      return undefined;
    }
    return symbols;
  }

  private async shutdown(): Promise<void> {
    const ctx = this.ctx;
    this.watchdog.stop();
    this.rest.dispose();
    ctx.connected = false;
    await this.stream.stop();
    await ctx.ex.close().catch(() => {});
    await this.repairs.drain();
    await Promise.allSettled([...ctx.runtimes.values()].map((rt) => rt.delivery));
  }
}
