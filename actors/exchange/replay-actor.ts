/**
 * The replay exchange actor (`exchange.<id>`, kind `replay`): publishes recorded trades (a file,
 * or another exchange's rows in a `trades` table) with their original timestamps and ids
 * through the TradePublisher, paced on the actor's clock (`speed` 60 = a minute per second,
 * `max` = as fast as JetStream takes them). Only the actor's symbols are published; the source
 * may hold more.
 *
 * Nothing twice: at start it reads, per symbol, the last trade already in TRADES and skips the
 * source up to and including it (same source, same order), so a restarted replay continues
 * where the previous session stopped; a batch that is re-sent anyway carries the same
 * Nats-Msg-Id. When the source is exhausted the actor stays up and idle (health detail
 * `state: finished`): exiting would make the supervisor restart it.
 */
import { existsSync } from 'node:fs';
import type { Pool } from '../../core/db.ts';
import { ConfigError } from '../../core/errors.ts';
import { parseStoredOptions, type ReplayExchangeOptions } from '../../core/exchanges-config.ts';
import { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import type { Topology } from '../../core/nats.ts';
import { retryFor } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import {
  batchTrades,
  ReplayPacer,
  readTradeFile,
  readTradesFromDb,
  type SymbolTrade,
  TRADES_TABLE_DDL,
} from './replay-source.ts';
import { lastStoredTrades } from './stored-trades.ts';
import { TradePublisher } from './trade-publisher.ts';

/** Trades per published message (the TradePublisher splits at the same size). */
const BATCH_MAX = 500;
/** A batch spans at most this much trade time, so pacing stays smooth at low speeds. */
const BATCH_WINDOW_MS = 1000;
const DB_PAGE_SIZE = 1000;
/** Upper bound of a database source without `to` (9999-12-31). */
const END_OF_TIME = 253_402_300_799_999;
const DETAIL_EVERY_BATCHES = 50;

type Source = ReplayExchangeOptions['source'];

/** The last trade of a symbol already in TRADES. */
interface ResumeAt {
  id: string;
  ts: number;
}

interface SymbolProgress {
  published: number;
  skipped: number;
  lastTs: number | null;
}

interface Progress {
  state: 'replaying' | 'finished';
  source: string;
  speed: number | 'max';
  /** Trades handed to JetStream this session. */
  published: number;
  /** Trades of the actor's symbols already in TRADES (an earlier session sent them). */
  skipped: number;
  /** Trades of symbols this exchange does not publish. */
  otherSymbols: number;
  /** Rows that are not valid trades, or go back in time; skipped and logged once per reason. */
  invalid: number;
  behindMs: number;
  startedAt: number;
  finishedAt: number | null;
  symbols: Record<string, SymbolProgress>;
}

export interface ReplayActorDeps {
  topo: Topology;
  pool: Pool;
}

export class ReplayExchangeActor implements ActorBehavior {
  constructor(
    private readonly ex: string,
    private readonly symbols: readonly string[],
    private readonly options: Record<string, unknown> | undefined,
    private readonly deps: ReplayActorDeps,
  ) {}

  async run(ctx: ActorContext): Promise<void> {
    const opts = this.parseOptions();
    const resume: ReadonlyMap<string, ResumeAt> = await retryFor(30_000).execute(
      () => lastStoredTrades(this.deps.topo.jsm, this.ex, this.symbols),
      ctx.signal,
    );
    const progress: Progress = {
      state: 'replaying',
      source: describeSource(opts.source),
      speed: opts.speed,
      published: 0,
      skipped: 0,
      otherSymbols: 0,
      invalid: 0,
      behindMs: 0,
      startedAt: ctx.clock.now(),
      finishedAt: null,
      symbols: Object.fromEntries(
        this.symbols.map((s) => [s, { published: 0, skipped: 0, lastTs: resume.get(s)?.ts ?? null }]),
      ),
    };
    const trades = await this.open(opts.source, ctx, progress);
    const publisher = new TradePublisher(this.deps.topo.js, this.ex, ctx.signal, BATCH_MAX);
    const pacer = new ReplayPacer(ctx.clock, opts.speed === 'max' ? Number.POSITIVE_INFINITY : opts.speed);
    const report = () => {
      progress.behindMs = pacer.behindMs;
      ctx.setDetail({ ...progress, symbols: { ...progress.symbols } });
    };
    report();
    ctx.ready();
    ctx.log.info({ source: progress.source, speed: opts.speed, resumed: resume.size }, 'replay started');

    const unpublished = skipPublished(trades, new Set(this.symbols), resume, progress);
    const batches = batchTrades(unpublished, { batchMax: BATCH_MAX, batchWindowMs: BATCH_WINDOW_MS });
    let n = 0;
    try {
      for await (const batch of pacer.pace(batches, ctx.signal)) {
        await publisher.publish(batch.symbol, batch.trades);
        const sym = progress.symbols[batch.symbol]!;
        sym.published += batch.trades.length;
        sym.lastTs = batch.trades.at(-1)!.ts;
        progress.published += batch.trades.length;
        ctx.markEvent(batch.trades.length);
        // Paced batches are few and far between; at full speed report now and then.
        if (Number.isFinite(pacer.speed) || ++n % DETAIL_EVERY_BATCHES === 0) {
          report();
          if (Number.isFinite(pacer.speed))
            metrics.replayBehind.set({ exchange: this.ex }, pacer.behindMs / 1000);
        }
      }
    } catch (e) {
      // Stopping cancels publishes still being retried; anything else is a real failure.
      if (!ctx.signal.aborted) throw e;
    }
    if (ctx.signal.aborted) {
      // Publishes already sent land anyway; the next session resumes after the last stored one.
      await publisher.flush().catch(() => {});
      report();
      return;
    }
    await publisher.flush();
    progress.state = 'finished';
    progress.finishedAt = ctx.clock.now();
    report();
    metrics.replayBehind.remove({ exchange: this.ex });
    ctx.log.info(
      { published: progress.published, skipped: progress.skipped, invalid: progress.invalid },
      'replay finished; idle until stopped',
    );
    await untilAborted(ctx.signal);
  }

  private parseOptions(): ReplayExchangeOptions {
    const parsed = parseStoredOptions('replay', this.options ?? {});
    if (parsed.kind !== 'replay') throw new ConfigError(`exchange ${this.ex}: not a replay exchange`);
    return parsed;
  }

  /** The trades of the source, every symbol, in time order. */
  private async open(
    source: Source,
    ctx: ActorContext,
    progress: Progress,
  ): Promise<AsyncIterable<SymbolTrade>> {
    if (source.type === 'file') {
      if (!existsSync(source.path))
        throw new ConfigError(`replay exchange ${this.ex}: the source file ${source.path} does not exist`);
      const once = new OnceLogger(ctx.log);
      return readTradeFile(source.path, {
        format: source.format,
        // Rows without a symbol belong to the only symbol, when there is just one.
        symbol: this.symbols.length === 1 ? this.symbols[0] : undefined,
        onInvalid: (where, reason) => {
          progress.invalid++;
          once.warn(reason, { where, reason }, 'replay: skipping a row that is not a valid trade');
        },
      });
    }
    const { pool } = this.deps;
    const exists = await pool.query<{ t: string | null }>(`SELECT to_regclass('trades')::text AS t`);
    if (!exists.rows[0]?.t)
      throw new ConfigError(
        `replay exchange ${this.ex} replays the stored trades of ${source.exchange}, but the database has no trades table; create it as: ${TRADES_TABLE_DDL.replace(/\s+/g, ' ')}`,
      );
    const from = source.from ? Date.parse(source.from) : 0;
    const to = source.to ? Date.parse(source.to) : END_OF_TIME;
    return mergeByTime(
      this.symbols.map((sym) =>
        readTradesFromDb(pool, source.exchange, sym, from, to, { pageSize: DB_PAGE_SIZE }),
      ),
    );
  }
}

/**
 * The trades still to publish: the actor's symbols only, each after its resume point. Trades
 * at the resume point's timestamp are skipped up to and including the one with its id.
 */
async function* skipPublished(
  trades: AsyncIterable<SymbolTrade>,
  wanted: ReadonlySet<string>,
  resume: ReadonlyMap<string, ResumeAt>,
  progress: Progress,
): AsyncGenerator<SymbolTrade> {
  const skipping = new Map(resume);
  for await (const st of trades) {
    if (!wanted.has(st.symbol)) {
      progress.otherSymbols++;
      continue;
    }
    const at = skipping.get(st.symbol);
    if (at) {
      if (st.trade.ts <= at.ts) {
        if (st.trade.ts === at.ts && st.trade.id === at.id) skipping.delete(st.symbol);
        progress.skipped++;
        progress.symbols[st.symbol]!.skipped++;
        continue;
      }
      skipping.delete(st.symbol);
    }
    yield st;
  }
}

/** Merges per-symbol trade streams (each in time order) into one, in time order. */
export async function* mergeByTime(
  sources: readonly AsyncIterable<SymbolTrade>[],
): AsyncGenerator<SymbolTrade> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  try {
    const heads = await Promise.all(iterators.map((it) => it.next()));
    for (;;) {
      let best = -1;
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i]!;
        if (h.done) continue;
        if (best < 0 || h.value.trade.ts < (heads[best]!.value as SymbolTrade).trade.ts) best = i;
      }
      if (best < 0) return;
      yield heads[best]!.value as SymbolTrade;
      heads[best] = await iterators[best]!.next();
    }
  } finally {
    await Promise.all(iterators.map((it) => it.return?.()));
  }
}

function describeSource(source: Source): string {
  if (source.type === 'file') return `file ${source.path}`;
  return `database trades of ${source.exchange}${source.from ? ` from ${source.from}` : ''}${source.to ? ` to ${source.to}` : ''}`;
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
