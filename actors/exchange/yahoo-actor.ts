/**
 * The Yahoo exchange actor (`exchange.<id>`, kind `yahoo`): runs a YahooFeed for its symbols and
 * publishes each batch of completed 1m chart bars as a SourceBarBatch on the symbol's trade
 * subject (the symbol actor tells bars from trades), with Nats-Msg-Id
 * `<ex>:<sym>:bars:<firstT>-<lastT>`; a failed publish is retried with the same id until it
 * lands or the actor stops, and the feed hands on nothing new for that symbol meanwhile.
 *
 * Resume: the newest bar batch of each symbol's subject in TRADES names the last minute
 * published; the feed starts at the minute after it, so a restart neither re-fetches nor skips a
 * bar. Minutes older than Yahoo still serves (see yahoo-feed.ts) are published as a GapMark after
 * the bars that follow them, so the symbol actor marks the bars they touch incomplete.
 *
 * Health: the feed's per-symbol state (`polling`, `backoff`, `market-closed` with its reason and
 * next open, circuit, last error, counts) goes into the actor's health detail every couple of
 * seconds and after every publish; the same numbers feed the tickmesh_feed_* metrics.
 */
import YahooFinance from 'yahoo-finance2';
import type { TimerHandle } from '../../core/clock.ts';
import { ConfigError } from '../../core/errors.ts';
import { parseStoredOptions, type YahooExchangeOptions } from '../../core/exchanges-config.ts';
import type { Logger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import type { Topology } from '../../core/nats.ts';
import {
  encodeJson,
  msgIds,
  SCHEMA_VERSION,
  type SourceBar,
  type SourceBarBatch,
  subjects,
} from '../../core/protocol/index.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { FeedMetrics } from './feed-health.ts';
import { lastStored, lookupEach } from './stored-trades.ts';
import { publishGapMark } from './trade-publisher.ts';
import { type SymbolFeedHealth, type YahooClient, YahooFeed } from './yahoo-feed.ts';

const MINUTE = 60_000;
/** How often the health detail and gauges are refreshed between publishes. */
const DETAIL_EVERY_MS = 2000;

/** Builds the yahoo-finance2 client of a Yahoo exchange actor; tests pass one on a fake. */
export type YahooClientFactory = (log: Logger) => YahooClient;

/** The production client: quiet (the feed logs and counts failures itself), no npm version check. */
export const defaultYahooClient: YahooClientFactory = (log) => {
  const debug = (...args: unknown[]) => log.debug({ yahooFinance: args.map(String).join(' ') });
  return new YahooFinance({
    suppressNotices: ['yahooSurvey'],
    validation: { logErrors: false, logOptionsErrors: false },
    versionCheck: false,
    logger: { info: debug, debug, dir: debug, error: debug, warn: debug },
  });
};

export interface YahooActorDeps {
  topo: Topology;
  /** Default: defaultYahooClient. */
  yahoo?: YahooClientFactory;
}

export class YahooExchangeActor implements ActorBehavior {
  constructor(
    private readonly ex: string,
    private readonly symbols: readonly string[],
    private readonly options: Record<string, unknown> | undefined,
    private readonly deps: YahooActorDeps,
  ) {}

  async run(ctx: ActorContext): Promise<void> {
    const opts = this.parseOptions();
    const since = await retryFor(30_000).execute(() => this.resumePoints(), ctx.signal);
    const yahoo = (this.deps.yahoo ?? defaultYahooClient)(ctx.log);
    const published = { messages: 0, bars: 0 };
    const publishPolicy = retryForever(100, 2000);
    const feedMetrics = new FeedMetrics(this.ex);
    const { js } = this.deps.topo;

    const report = () => {
      if (ctx.signal.aborted) return;
      const health = feed.health();
      const now = ctx.clock.now();
      const symbols: Record<string, Omit<SymbolFeedHealth, 'symbol'>> = {};
      const states: Record<string, number> = {};
      for (const [sym, h] of Object.entries(health)) {
        const { symbol: _s, ...rest } = h;
        symbols[sym] = rest;
        states[h.state] = (states[h.state] ?? 0) + 1;
        feedMetrics.sample(
          sym,
          {
            circuit: h.circuit,
            errors: h.errors,
            lastDataAt: h.lastBarT === null ? null : h.lastBarT + MINUTE,
            marketOpen: h.state === 'starting' || h.state === 'stopped' ? null : h.state !== 'market-closed',
          },
          now,
        );
      }
      ctx.setDetail({ adapter: 'yahoo', states, published, symbols });
    };

    const feed: YahooFeed = new YahooFeed(
      { exchange: opts, symbols: this.symbols, clock: ctx.clock, log: ctx.log, yahoo, since },
      {
        onBars: async (sym: string, bars: SourceBar[]) => {
          const batch: SourceBarBatch = { v: SCHEMA_VERSION, ex: this.ex, sym, bars };
          const data = encodeJson(batch);
          const id = msgIds.sourceBars(this.ex, sym, bars[0]!.t, bars.at(-1)!.t);
          await publishPolicy.execute(
            () => js.publish(subjects.trade(this.ex, sym), data, { msgID: id }),
            ctx.signal,
          );
          published.messages++;
          published.bars += bars.length;
          metrics.sourceBarsReceived.inc({ exchange: this.ex, symbol: sym }, bars.length);
          ctx.markEvent(bars.length);
          // The feed records the bars as emitted once this returns: report after that.
          setImmediate(report);
        },
        onGap: async (sym, gap) => {
          // The feed calls this after the bars that follow the lost window.
          await publishGapMark(js, this.ex, sym, gap, publishPolicy, ctx.signal);
          ctx.log.warn({ symbol: sym, gap }, "minutes beyond Yahoo's reach: gap mark published");
          setImmediate(report);
        },
      },
    );

    let timer: TimerHandle | null = null;
    const tick = () => {
      report();
      timer = ctx.clock.setTimeout(tick, DETAIL_EVERY_MS);
    };
    const running = feed.start(ctx.signal);
    tick();
    ctx.ready();
    ctx.log.info(
      {
        symbols: this.symbols.length,
        resumed: Object.keys(since).length,
        pollIntervalMs: opts.pollIntervalMs,
      },
      'yahoo feed started',
    );
    try {
      await running;
    } finally {
      if (timer) ctx.clock.clearTimeout(timer);
      feedMetrics.remove();
    }
  }

  private parseOptions(): YahooExchangeOptions {
    const parsed = parseStoredOptions('yahoo', this.options ?? {});
    if (parsed.kind !== 'yahoo') throw new ConfigError(`exchange ${this.ex}: not a yahoo exchange`);
    return parsed;
  }

  /**
   * Per symbol, the open time of the first bar not yet in TRADES: the minute after the last
   * source bar published (or after the last trade, should the subject hold trades).
   */
  private async resumePoints(): Promise<Record<string, number>> {
    return Object.fromEntries(await lookupEach(this.symbols, (sym) => this.resumePoint(sym)));
  }

  /**
   * The minute after the newest stored bar (or trade) of `sym`, and never inside a window a gap
   * mark has declared lost (the mark follows the bars after its window).
   */
  private async resumePoint(sym: string): Promise<number | null> {
    let lostUntil = Number.NEGATIVE_INFINITY;
    const next = await lastStored(this.deps.topo.jsm, subjects.trade(this.ex, sym), (m) => {
      if (m.kind === 'bars') {
        const last = m.batch.bars.at(-1);
        return last ? last.t + MINUTE : undefined;
      }
      if (m.kind === 'trades') {
        const last = m.batch.trades.at(-1);
        return last ? Math.floor(last.ts / MINUTE) * MINUTE + MINUTE : undefined;
      }
      lostUntil = Math.max(lostUntil, Math.ceil(m.mark.gap.to / MINUTE) * MINUTE);
      return undefined;
    });
    if (next === null) return Number.isFinite(lostUntil) ? lostUntil : null;
    return Math.max(next, lostUntil);
  }
}
