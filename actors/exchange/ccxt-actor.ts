/**
 * The ccxt exchange actor (`exchange.<id>`, kind `ccxt`): runs a CcxtFeed (websocket streaming
 * or REST polling, see ccxt/feed.ts) for the exchange's active symbols and publishes what it
 * hands on through the TradePublisher: batches with Nats-Msg-Id, `source: 'repair'` on trades
 * recovered over REST.
 *
 * Resume: at start it reads each symbol's last trade in TRADES and gives the feed that as its
 * watermark, so the feed's first act is a REST repair of the gap since the previous session,
 * and nothing already stored is published again (the feed drops trades at or before the
 * watermark; a regrouped batch would escape Nats-Msg-Id dedupe, this does not).
 *
 * Gap marks: when the feed reports a hole it cannot repair (the exchange's history no longer
 * reaches the watermark, or it refuses the repair), a GapMark for (from, to) goes to the trade
 * subject right after the trades that end it, once those are stored; the symbol actor marks the
 * bars it overlaps incomplete. A resume that finds a gap mark last reads the trade before it.
 *
 * Credentials come from the environment variables named in `ccxt.credentialsEnv`, read here
 * and handed to ccxt only (never stored, logged or reported).
 *
 * Health: every HEALTH_EVERY_MS the feed's health (connection, circuit, Retry-After, counters,
 * last error, and per symbol its state, staleness and last-trade age) becomes the actor's
 * health detail, so a stall or an outage shows in `actor-health` while it lasts; the same
 * numbers feed the tickmesh_feed_* metrics every METRICS_EVERY_MS.
 */
import type { TimerHandle } from '../../core/clock.ts';
import { ConfigError } from '../../core/errors.ts';
import { type CcxtExchangeOptions, parseStoredOptions } from '../../core/exchanges-config.ts';
import { metrics } from '../../core/metrics.ts';
import type { Topology } from '../../core/nats.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import {
  type CcxtExchange,
  CcxtFeed,
  type CcxtFeedConfig,
  type FeedGap,
  type FeedHealth,
  type ResumePoint,
  type SymbolHealth,
  type TradeSink,
} from './ccxt/index.ts';
import { FeedMetrics } from './feed-health.ts';
import { lastStoredTrades } from './stored-trades.ts';
import { publishGapMark, TradePublisher } from './trade-publisher.ts';

/** How often the health detail is refreshed (the heartbeat writes it to KV). */
const HEALTH_EVERY_MS = 500;
const METRICS_EVERY_MS = 2000;
/** Gap marks kept in the health detail. */
const RECENT_GAPS = 5;
/** Circuit transitions kept in the health detail. */
const RECENT_TRANSITIONS = 5;
/**
 * Symbols listed one by one in the health detail (those with a problem first): the record is
 * rewritten every heartbeat and must stay well under the NATS payload limit for an exchange
 * with thousands of symbols. `symbolStates` counts all of them.
 */
const DETAIL_SYMBOLS = 100;

/**
 * A hook on the ccxt instances a worker builds. Everything a user sets (urls, proxies, CA,
 * options) comes from the exchanges file; this is for tests that must reach into ccxt itself.
 */
export interface CcxtAdapter {
  /** Runs on each new ccxt instance of tickmesh exchange `ex` before any call. */
  configure?(exchange: CcxtExchange, ex: string): void;
}

export interface CcxtActorDeps {
  topo: Topology;
  ccxt?: CcxtAdapter;
  /** Where credentials are read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface CcxtHealthDetail extends Omit<FeedHealth, 'exchange'> {
  adapter: 'ccxt';
  ccxtId: string;
  /** Symbols that resumed from a trade already in TRADES. */
  resumed: number;
  published: { trades: number; backfilled: number; gapMarks: number };
  recentGaps: ({ symbol: string } & FeedGap)[];
  /** How many symbols are in each state (streaming, repairing, stale, polling, backoff). */
  symbolStates: Record<string, number>;
  /** Symbols left out of `symbols` (all healthy ones beyond DETAIL_SYMBOLS). */
  symbolsOmitted: number;
}

export class CcxtExchangeActor implements ActorBehavior {
  constructor(
    private readonly ex: string,
    private readonly symbols: readonly string[],
    private readonly options: Record<string, unknown> | undefined,
    private readonly deps: CcxtActorDeps,
  ) {}

  async run(ctx: ActorContext): Promise<void> {
    const opts = this.parseOptions();
    const credentials = this.credentials(opts);
    const stored = await retryFor(30_000).execute(
      () => lastStoredTrades(this.deps.topo.jsm, this.ex, this.symbols),
      ctx.signal,
    );
    const resume = new Map<string, ResumePoint>([...stored].map(([sym, t]) => [sym, { id: t.id, ts: t.ts }]));
    const { js } = this.deps.topo;
    const publisher = new TradePublisher(js, this.ex, ctx.signal);
    const gapPolicy = retryForever(100, 2000);
    const feedMetrics = new FeedMetrics(this.ex);
    const published = { trades: 0, backfilled: 0, gapMarks: 0 };
    const recentGaps: CcxtHealthDetail['recentGaps'] = [];
    // Per-symbol counts not yet added to the counters (added in bulk, off the hot path).
    const unreported = new Map<string, { received: number; backfilled: number }>();

    const sink: TradeSink = {
      onTrades: async (sym, trades, source) => {
        await publisher.publish(sym, trades, source);
        const n = trades.length;
        published.trades += n;
        let u = unreported.get(sym);
        if (!u) {
          u = { received: 0, backfilled: 0 };
          unreported.set(sym, u);
        }
        u.received += n;
        if (source === 'repair') {
          published.backfilled += n;
          u.backfilled += n;
        }
        ctx.markEvent(n);
      },
      onGap: async (sym, gap) => {
        // After the trades that end the gap: the bars it overlaps exist when it is applied.
        await publisher.flush();
        await publishGapMark(js, this.ex, sym, gap, gapPolicy, ctx.signal);
        published.gapMarks++;
        recentGaps.push({ symbol: sym, ...gap });
        if (recentGaps.length > RECENT_GAPS) recentGaps.shift();
        ctx.log.warn({ symbol: sym, gap }, 'unrepairable gap: gap mark published');
        reportNow();
      },
    };

    const config: CcxtFeedConfig = {
      exchange: opts,
      symbols: [...new Set(this.symbols)],
      credentials,
      configure: this.deps.ccxt?.configure
        ? (exchange) => this.deps.ccxt!.configure!(exchange, this.ex)
        : undefined,
      clock: ctx.clock,
      log: ctx.log,
      resume: Object.fromEntries(resume),
    };
    const feed = new CcxtFeed(config, sink);

    let lastMetricsAt = Number.NEGATIVE_INFINITY;
    const report = () => {
      const health = feed.health();
      const { exchange: ccxtId, circuitTransitions, symbols, ...rest } = health;
      const listed = detailSymbols(symbols);
      const detail: CcxtHealthDetail = {
        adapter: 'ccxt',
        ccxtId,
        ...rest,
        symbols: listed.symbols,
        symbolStates: listed.states,
        symbolsOmitted: listed.omitted,
        circuitTransitions: circuitTransitions.slice(-RECENT_TRANSITIONS),
        resumed: resume.size,
        published: { ...published },
        recentGaps: [...recentGaps],
      };
      ctx.setDetail(detail as unknown as Record<string, unknown>);
      const now = ctx.clock.now();
      if (now - lastMetricsAt >= METRICS_EVERY_MS) {
        lastMetricsAt = now;
        this.sampleMetrics(health, feedMetrics, unreported, now);
      }
    };

    const reportNow = () => {
      try {
        report();
      } catch (err) {
        ctx.log.error({ err }, 'ccxt health report failed');
      }
    };
    let timer: TimerHandle | null = null;
    const tick = () => {
      if (ctx.signal.aborted) return;
      timer = ctx.clock.setTimeout(tick, HEALTH_EVERY_MS);
      reportNow();
    };
    const running = feed.start(ctx.signal);
    tick();
    ctx.ready();
    ctx.log.info(
      { ccxt: opts.ccxt.id, mode: opts.ccxt.mode, symbols: config.symbols.length, resumed: resume.size },
      'ccxt feed started',
    );
    try {
      await running;
    } catch (e) {
      // A failing sink only fails when stopping (publishes retry until then).
      if (!ctx.signal.aborted) throw e;
    } finally {
      if (timer) ctx.clock.clearTimeout(timer);
      // Publishes already sent land anyway; the next session resumes after the last stored one.
      await publisher.flush().catch(() => {});
      this.sampleMetrics(feed.health(), feedMetrics, unreported, ctx.clock.now());
      feedMetrics.remove();
    }
  }

  private sampleMetrics(
    health: FeedHealth,
    feedMetrics: FeedMetrics,
    unreported: Map<string, { received: number; backfilled: number }>,
    now: number,
  ): void {
    for (const [symbol, u] of unreported) {
      const labels = { exchange: this.ex, symbol };
      if (u.received > 0) metrics.feedTradesReceived.inc(labels, u.received);
      if (u.backfilled > 0) metrics.feedBackfilled.inc(labels, u.backfilled);
    }
    unreported.clear();
    feedMetrics.sampleExchange({
      errors: health.errors,
      reconnects: health.reconnects,
      restWeightUsed: health.restWeightUsed,
    });
    for (const [symbol, h] of Object.entries(health.symbols))
      feedMetrics.sample(
        symbol,
        { circuit: health.circuit, errors: 0, lastDataAt: h.lastTradeTs, marketOpen: null },
        now,
      );
  }

  private parseOptions(): CcxtExchangeOptions {
    const parsed = parseStoredOptions('ccxt', this.options ?? {});
    if (parsed.kind !== 'ccxt') throw new ConfigError(`exchange ${this.ex}: not a ccxt exchange`);
    return parsed;
  }

  /** apiKey/secret/password from the named environment variables (public data needs none). */
  private credentials(opts: CcxtExchangeOptions): Record<string, string> {
    const names = opts.ccxt.credentialsEnv;
    if (!names) return {};
    const env = this.deps.env ?? process.env;
    const out: Record<string, string> = {};
    for (const [field, variable] of Object.entries(names)) {
      if (variable === undefined) continue;
      const value = env[variable];
      if (!value)
        throw new ConfigError(
          `exchange ${this.ex}: credentials variable ${variable} (${field}) is not set on this worker`,
        );
      out[field] = value;
    }
    return out;
  }
}

/** Every symbol's health when there are few; else those in trouble first, up to DETAIL_SYMBOLS. */
function detailSymbols(all: FeedHealth['symbols']) {
  const states: Record<string, number> = {};
  const entries = Object.entries(all);
  for (const [, h] of entries) states[h.state] = (states[h.state] ?? 0) + 1;
  if (entries.length <= DETAIL_SYMBOLS) return { symbols: all, states, omitted: 0 };
  const trouble = (h: SymbolHealth) =>
    h.stale || (h.state !== 'streaming' && h.state !== 'polling') ? 0 : 1;
  entries.sort(([a, x], [b, y]) => trouble(x) - trouble(y) || (a < b ? -1 : 1));
  return {
    symbols: Object.fromEntries(entries.slice(0, DETAIL_SYMBOLS)),
    states,
    omitted: entries.length - DETAIL_SYMBOLS,
  };
}
