/**
 * Section 2, second row: the simulator exchange actor (SimExchangeActor + TradePublisher, the
 * real publishing path) at a high configured rate, with the symbol actors consuming. Does the
 * pipeline keep up, and what is left in the backlog at the end?
 */
import { metrics } from '../core/metrics.ts';
import { actorIds } from '../core/protocol/index.ts';
import {
  addExchange,
  type BenchEnv,
  benchConfig,
  metricSum,
  nowMs,
  progress,
  removeExchange,
  sleep,
  startCluster,
  waitFor,
  waitForActors,
} from './infra.ts';

export interface SimResult {
  configuredPerSec: number;
  publishedPerSec: number;
  appliedPerSec: number;
  /** Trades published but not yet applied when the window ended. */
  backlog: number;
  seconds: number;
}

/** The simulator exchange actor at a high configured rate: does the pipeline keep up? */
export async function runSimExchange(
  env: BenchEnv,
  o: { symbols: string[]; ratePerSymbol: number; warmupSec: number; seconds: number },
): Promise<SimResult> {
  const ex = 'benchsim';
  const cfg = benchConfig(env, { sim: { enabled: true, rate: o.ratePerSymbol, batchMax: 200 } });
  await addExchange(env.db.pool, ex, 'sim', o.symbols);
  const cluster = await startCluster(cfg);
  try {
    await waitForActors(env.topo, ex, o.symbols);
    await waitFor(
      () => cluster.worker.actorIds().includes(actorIds.exchange(ex)),
      'sim exchange actor',
      30_000,
    );
    const published = () => metricSum(metrics.tradesPublished, { exchange: ex });
    const applied = () => metricSum(metrics.tradesIn, { exchange: ex });
    progress('sim', `${o.symbols.length} symbols × ${o.ratePerSymbol}/s; warm-up ${o.warmupSec} s`);
    await sleep(o.warmupSec * 1000);
    const [p0, a0, t0] = [await published(), await applied(), nowMs()];
    for (let left = o.seconds; left > 0; left -= 5) {
      await sleep(Math.min(5, left) * 1000);
      progress('sim', `published ${(await published()) - p0}, applied ${(await applied()) - a0}`);
    }
    const [p1, a1, t1] = [await published(), await applied(), nowMs()];
    const seconds = (t1 - t0) / 1000;
    return {
      configuredPerSec: o.ratePerSymbol * o.symbols.length,
      publishedPerSec: (p1 - p0) / seconds,
      appliedPerSec: (a1 - a0) / seconds,
      backlog: p1 - a1,
      seconds,
    };
  } finally {
    await removeExchange(env, cluster, ex);
    await cluster.stop();
  }
}
