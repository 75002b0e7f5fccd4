/**
 * The simulator exchange actor (`exchange.sim`): one SimMarket per symbol, publishing at a
 * configured rate. It resumes each market from the last trade stored in TRADES, so ids and
 * prices continue where the previous session stopped and nothing is published twice.
 */
import type { Config } from '../../core/config.ts';
import type { Topology } from '../../core/nats.ts';
import type { Trade } from '../../core/protocol/index.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { type SimCursor, SimMarket } from './sim-market.ts';
import { lastStoredTrades } from './stored-trades.ts';
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
    const stored = await lastStoredTrades(topo.jsm, this.ex, this.symbols);
    for (const sym of this.symbols)
      markets.set(sym, new SimMarket(cfg.sim.seed, sym, simCursor(stored.get(sym))));
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
}

/** Where a market continues from its last stored trade (the simulator's ids are integers). */
function simCursor(last: Trade | undefined): SimCursor | undefined {
  if (!last || !/^\d+$/.test(last.id)) return undefined;
  return { id: Number(last.id), px: last.px, ts: last.ts };
}
