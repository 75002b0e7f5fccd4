/**
 * Repair paging over REST: after every (re)connect, stall, proactive refresh or unreadable frame,
 * a symbol's gap is paged forward from the last trade handed on, the missing trades handed on
 * (source 'repair') before the live trades that arrived meanwhile (buffered). Polling mode pages
 * the same way (source 'live').
 *
 * A repair after a reconnect is only trusted once the websocket has proven live: a REST page
 * requested after the first buffered live trade arrived. Otherwise trades between the last REST
 * answer and the moment the subscription really started would be lost; when no live trade came
 * during the repair, the symbol stays `unproven` and the first live trade triggers a short
 * verifying repair.
 */
import type { Trade } from '../../../core/protocol/index.ts';
import type { FeedContext, SymbolRuntime } from './feed-context.ts';
import type { RestLane } from './rest-lane.ts';
import type { RepairReason } from './symbol-phase.ts';
import { idsSkipped, inExchangeOrder, numericId, reaches } from './symbol-track.ts';
import type { CcxtTrade, TradeSource } from './types.ts';

export class Repairs {
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly ctx: FeedContext,
    private readonly rest: RestLane,
    /** Asks the websocket loop for a fresh connection (REST showed the stream missing trades). */
    private readonly reconnect: (reason: 'stale') => void,
  ) {}

  /** Repairs every symbol that has a watermark to repair from. */
  repairAll(reason: RepairReason): void {
    for (const rt of this.ctx.runtimes.values()) if (rt.track.lastTs !== undefined) this.repair(rt, reason);
  }

  /** Starts (or, if one runs, re-arms) the repair of one symbol. */
  repair(rt: SymbolRuntime, reason: RepairReason): void {
    if (this.ctx.stopped) return;
    if (this.ctx.applyPhase(rt, { type: 'repair', reason })) this.start(rt);
  }

  /** Runs the repair task of a symbol whose phase just turned `repairing`. */
  start(rt: SymbolRuntime): void {
    const task = this.runRepair(rt)
      .catch((err) => this.ctx.noteError(err, `repair ${rt.symbol}`))
      .finally(() => this.running.delete(task));
    this.running.add(task);
  }

  /** Settles when every running repair has ended. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** Polling mode: pages every symbol forward each interval until the feed stops. */
  async poll(): Promise<void> {
    const ctx = this.ctx;
    while (!ctx.stopped) {
      for (const rt of ctx.runtimes.values()) {
        if (ctx.stopped) break;
        const before = rt.tradesReceived;
        try {
          if ((await this.pageForward(rt, 'live', false)) === undefined) break;
        } catch (err) {
          ctx.noteError(err, `poll ${rt.symbol}`); // that symbol's turn is over; the next poll retries
        }
        if (rt.tradesReceived > before) {
          rt.lastLiveAt = ctx.clock.now();
          ctx.applyPhase(rt, { type: 'heard' });
        }
      }
      await ctx.sleep(ctx.s.pollIntervalMs);
    }
  }

  private async runRepair(rt: SymbolRuntime): Promise<void> {
    const ctx = this.ctx;
    try {
      await this.repairLoop(rt);
    } catch (err) {
      // The exchange refuses the repair for good: what the stream brings next follows a hole.
      if (!ctx.stopped && rt.track.lastTs !== undefined)
        rt.pendingGap ??= { from: rt.track.lastTs, reason: `repair failed: ${errorText(err)}` };
      throw err;
    } finally {
      ctx.applyPhase(rt, { type: 'repair-done' });
      // Live trades buffered after the last page (or before a failure) still wait: hand them on.
      if (rt.buffer.length > 0)
        ctx.handOn(
          rt,
          rt.buffer.splice(0).map((b) => b.trade),
          'live',
        );
    }
  }

  private async repairLoop(rt: SymbolRuntime): Promise<void> {
    const ctx = this.ctx;
    while (rt.phase.kind === 'repairing' && !ctx.stopped) {
      const reason = rt.phase.reason;
      const needsProof = reason === 'connect' || reason === 'verify';
      const found = await this.pageForward(rt, 'repair', needsProof);
      if (found === undefined) break; // stopped
      // Hand on the live trades that waited, minus what REST already brought.
      const waiting = rt.buffer.splice(0).map((b) => b.trade);
      ctx.handOn(rt, waiting, 'live');
      if (needsProof && waiting.length === 0) ctx.applyPhase(rt, { type: 'unproven' });
      if (reason === 'stale') {
        if (found > 0) {
          ctx.log.warn(
            { symbol: rt.symbol, missed: found },
            'stream missed trades that REST has; reconnecting',
          );
          ctx.applyPhase(rt, { type: 'missing' });
          this.reconnect('stale');
        } else {
          // A quiet market, not a dead feed: count this as a sign of life, look again later.
          rt.quietLevel++;
          rt.verifiedAt = ctx.clock.now();
          ctx.applyPhase(rt, { type: 'quiet' });
        }
      }
      if (rt.phase.kind !== 'repairing' || rt.phase.again === undefined) break;
      ctx.applyPhase(rt, { type: 'repair-next' });
    }
  }

  /**
   * Pages fetchTrades forward from the symbol's watermark, handing new trades on as `source`,
   * until caught up. REST stops where it meets the first buffered live trade: from there on the
   * stream is proven continuous and the buffer delivers. With `needsProof` a repair that does not
   * meet the stream also needs a page requested after the first live trade arrived (or no live
   * trade at all). Returns how many new trades it found; undefined when the feed stopped.
   */
  async pageForward(
    rt: SymbolRuntime,
    source: TradeSource,
    needsProof: boolean,
  ): Promise<number | undefined> {
    const ctx = this.ctx;
    const { pageLimit: limit, maxPages } = ctx.s.repair;
    let found = 0;
    for (let page = 0; page < maxPages; page++) {
      const requestSeq = ctx.nextSeq();
      const raw = await this.rest.run(`fetchTrades ${rt.symbol}`, () => this.fetchPage(rt, limit));
      if (raw === undefined) return undefined;
      const fresh: Trade[] = [];
      let metStream = false;
      for (const trade of inExchangeOrder(ctx.normaliseAll(raw))) {
        const live = rt.buffer[0]?.trade;
        if (live && reaches(trade, live, ctx.s.dedupe.numericIdsIncrease)) {
          metStream = true;
          break;
        }
        const skipped = ctx.s.consecutiveIds ? idsSkipped(rt.track.lastId, trade) : 0n;
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
        } else ctx.counters.duplicates++;
      }
      if (fresh.length > 0) {
        found += fresh.length;
        ctx.deliver(rt, fresh, source);
      }
      if (metStream) return found;
      const caughtUp = raw.length < limit || fresh.length === 0;
      const proven = !needsProof || rt.buffer.length === 0 || rt.buffer[0]!.seq < requestSeq;
      if (caughtUp && proven) return found;
      if (raw.length >= limit && fresh.length === 0) {
        ctx.log.warn({ symbol: rt.symbol }, 'a full page brought nothing new; giving up this repair');
        return found;
      }
    }
    ctx.log.warn({ symbol: rt.symbol, pages: maxPages }, 'repair stopped at its page limit');
    // Live trades are handed on next: what lies between is not repaired.
    if (source === 'repair' && rt.track.lastTs !== undefined)
      rt.pendingGap ??= { from: rt.track.lastTs, reason: 'repair stopped at its page limit' };
    return found;
  }

  /** One fetchTrades page after the watermark, in the exchange's most exact cursor. */
  private async fetchPage(rt: SymbolRuntime, limit: number): Promise<CcxtTrade[]> {
    const { ex, s } = this.ctx;
    const { lastId, lastTs } = rt.track;
    if (lastTs === undefined) return ex.fetchTrades(rt.symbol, undefined, limit);
    const lastNum = lastId === undefined ? undefined : numericId(lastId);
    if (s.cursor === 'binance-fromId' && lastNum !== undefined) {
      // aggTrades by id: exact, and immune to the 1 h window ccxt adds to `since`.
      return ex.fetchTrades(rt.symbol, undefined, limit, { fromId: String(lastNum + 1n) });
    }
    if (s.cursor === 'kraken-ns') {
      // ccxt turns `since` into whole seconds and then filters by the ms value, which can empty
      // a full page; Kraken's nanosecond cursor has no such loss.
      return ex.fetchTrades(rt.symbol, undefined, limit, { since: String(BigInt(lastTs) * 1_000_000n) });
    }
    return ex.fetchTrades(rt.symbol, lastTs, limit);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
