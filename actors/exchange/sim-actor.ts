/**
 * The simulator exchange actor (`exchange.sim`): one SimMarket per symbol, publishing at a
 * configured rate. It resumes each market from the last trade stored in TRADES, so ids and
 * prices continue where the previous session stopped and nothing is published twice.
 */
import type { Config } from '../../core/config.ts';
import type { Topology } from '../../core/nats.ts';
import { decodeJson, STREAMS, subjects, validateTradeBatch } from '../../core/protocol/index.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { type SimCursor, SimMarket } from './sim-market.ts';
import { TradePublisher } from './trade-publisher.ts';

const TICK_MS = 50;

export class SimExchangeActor implements ActorBehavior {
  constructor(
    private readonly ex: string,
    private readonly symbols: readonly string[],
    private readonly deps: { topo: Topology; cfg: Config },
  ) {}

  async run(ctx: ActorContext): Promise<void> {
    const { topo, cfg } = this.deps;
    const markets = new Map<string, SimMarket>();
    for (const sym of this.symbols)
      markets.set(sym, new SimMarket(cfg.sim.seed, sym, await this.resumePoint(sym)));
    const publisher = new TradePublisher(topo.js, this.ex, ctx.signal, cfg.sim.batchMax);
    const due = new Map<string, number>([...markets.keys()].map((s) => [s, 0]));
    ctx.ready();
    let last = ctx.clock.now();
    while (!ctx.signal.aborted) {
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          ctx.clock.clearTimeout(t);
          resolve();
        };
        const t = ctx.clock.setTimeout(() => {
          ctx.signal.removeEventListener('abort', onAbort);
          resolve();
        }, TICK_MS);
        ctx.signal.addEventListener('abort', onAbort, { once: true });
      });
      if (ctx.signal.aborted) break;
      const now = ctx.clock.now();
      const elapsed = now - last;
      let published = 0;
      for (const [sym, market] of markets) {
        const owed = due.get(sym)! + (cfg.sim.rate * elapsed) / 1000;
        const n = Math.floor(owed);
        due.set(sym, owed - n);
        if (n === 0) continue;
        await publisher.publish(sym, market.next(n, last, now));
        published += n;
      }
      last = now;
      if (published > 0) ctx.markEvent(published);
    }
    await publisher.flush().catch(() => {});
  }

  private async resumePoint(sym: string): Promise<SimCursor | undefined> {
    const stored = await this.deps.topo.jsm.streams.getMessage(STREAMS.trades, {
      last_by_subj: subjects.trade(this.ex, sym),
    });
    if (!stored) return undefined;
    const parsed = decodeJson(stored.data);
    const checked = parsed.ok ? validateTradeBatch(parsed.value) : null;
    const lastTrade = checked?.ok ? checked.value.batch.trades.at(-1) : undefined;
    if (!lastTrade || !/^\d+$/.test(lastTrade.id)) return undefined;
    return { id: Number(lastTrade.id), px: lastTrade.px, ts: lastTrade.ts };
  }
}
