/**
 * Section 2: pipeline throughput. External trades (pre-generated, past timestamps) go through
 * JetStream → symbol actors → BARS → writer → candles, with supervisor and worker in this
 * process. Timed from the first publish until every trade is applied (the symbol actors'
 * trades-in counter) and until the last expected closed 1m bar is in `candles`; then the stored
 * bars are compared, field by field, with barsFromTrades. Second row: the simulator exchange
 * actor publishing at a configured rate.
 */
import { mergeDeep } from '../core/config.ts';
import { metrics } from '../core/metrics.ts';
import { consumers, STREAMS } from '../core/protocol/index.ts';
import { type StoredBar, sameBar } from '../test/support/bars.ts';
import { publishAll } from './ceiling.ts';
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
import type { Workload } from './workload.ts';

export interface PipelineResult {
  mode: 'live' | 'backlog';
  trades: number;
  msgs: number;
  publishSeconds: number;
  appliedSeconds: number;
  storedSeconds: number;
  appliedTradesPerSec: number;
  endToEndTradesPerSec: number;
  expectedBars: number;
  storedBars: number;
  revisedBars: number;
  mismatches: string[];
  quarantined: number;
  /** Symbol actor restarts (crashes) during the run. */
  restarts: number;
  /** CPU time of this process (publisher, actors, writer) over the timed window, seconds. */
  cpuSeconds: number;
}

async function count1m(env: BenchEnv, ex: string): Promise<number> {
  const r = await env.db.pool.query<{ n: number }>(
    `SELECT count(*) AS n FROM candles WHERE exchange = $1 AND timeframe = '1m'`,
    [ex],
  );
  return r.rows[0]?.n ?? 0;
}

/** Compares the stored closed 1m bars with the reference; returns the differences found. */
async function verifyBars(env: BenchEnv, w: Workload): Promise<{ mismatches: string[]; revised: number }> {
  const { rows } = await env.db.pool.query<StoredBar & { symbol: string; revision: number }>(
    `SELECT symbol, (extract(epoch FROM ts) * 1000)::float8 AS t, open, high, low, close, volume, trades,
            gap, revision
       FROM candles WHERE exchange = $1 AND timeframe = '1m' ORDER BY symbol, ts`,
    [w.ex],
  );
  const mismatches: string[] = [];
  let revised = 0;
  for (const sym of w.symbols) {
    const got = rows.filter((r) => r.symbol === sym);
    const want = w.expected1m.get(sym) ?? [];
    if (got.length !== want.length)
      mismatches.push(`${sym}: ${got.length} bars stored, ${want.length} expected`);
    want.forEach((b, i) => {
      const r = got[i];
      if (!r) return;
      if (r.revision > 0) revised++;
      if (!sameBar(r, b))
        mismatches.push(`${sym} ${new Date(b.t).toISOString()}: ${JSON.stringify(r)} ≠ ${JSON.stringify(b)}`);
    });
  }
  return { mismatches, revised };
}

/**
 * `live`: the symbol actors run while the trades are published (publisher and actors share this
 * process), timed from the first publish. `backlog`: the trades are in the stream before the
 * actors start, timed from the first applied trade — the consuming side on its own.
 */
export async function runPipeline(
  env: BenchEnv,
  w: Workload,
  o: {
    mode: 'live' | 'backlog';
    window: number;
    graceMs: number;
    timeoutMs: number;
    /** Config overrides for the cluster under test (as in the config file). */
    config?: Record<string, unknown>;
  },
): Promise<PipelineResult> {
  const cfg = benchConfig(env, mergeDeep({ bars: { graceMs: o.graceMs } }, o.config ?? {}));
  const label = `pipeline ${o.mode}`;
  const applied = () => metricSum(metrics.tradesIn, { exchange: w.ex });
  const quarantined0 = await metricSum(metrics.quarantined, { source: 'symbol' });
  const restarts0 = await metricSum(metrics.actorRestarts, { kind: 'symbol' });
  const applied0 = await applied();
  const publish = async () => {
    progress(label, `publishing ${w.totalTrades} trades in ${w.batches.length} messages`);
    const duplicates = await publishAll(env.topo.js, w.batches, o.window);
    if (duplicates > 0) throw new Error(`pipeline: ${duplicates} publishes were deduplicated`);
  };
  let t0 = nowMs();
  let cpu0 = process.cpuUsage();
  if (o.mode === 'backlog') await publish();
  let publishSeconds = (nowMs() - t0) / 1000;
  await addExchange(env.db.pool, w.ex, 'external', w.symbols);
  const cluster = await startCluster(cfg);
  try {
    let appliedAt: Promise<number>;
    const allApplied = () =>
      waitFor(
        async () => (await applied()) - applied0 >= w.totalTrades && nowMs(),
        'every trade applied',
        o.timeoutMs,
        5,
      );
    if (o.mode === 'live') {
      await waitForActors(env.topo, w.ex, w.symbols);
      t0 = nowMs();
      cpu0 = process.cpuUsage();
      appliedAt = allApplied();
      await publish();
      publishSeconds = (nowMs() - t0) / 1000;
    } else {
      t0 = await waitFor(
        async () => (await applied()) > applied0 && nowMs(),
        'first trade applied',
        60_000,
        2,
      );
      cpu0 = process.cpuUsage();
      appliedAt = allApplied();
    }
    const tApplied = await appliedAt;
    const expectedBars = [...w.expected1m.values()].reduce((n, b) => n + b.length, 0);
    const tStored = await waitFor(
      async () => (await count1m(env, w.ex)) >= expectedBars && nowMs(),
      `${expectedBars} closed 1m bars in candles`,
      o.timeoutMs,
      10,
    );
    const cpu = process.cpuUsage(cpu0);
    progress(
      label,
      `applied after ${((tApplied - t0) / 1000).toFixed(1)} s, stored after ${((tStored - t0) / 1000).toFixed(1)} s`,
    );
    for (const sym of w.symbols) {
      const info = await env.topo.jsm.consumers.info(STREAMS.trades, consumers.symbolTrades(w.ex, sym));
      if (info.num_pending !== 0 || info.num_ack_pending !== 0)
        throw new Error(
          `${sym}: consumer still has ${info.num_pending} pending / ${info.num_ack_pending} unacked`,
        );
    }
    // Let a straggling duplicate or revision land before comparing.
    await sleep(500);
    const { mismatches, revised } = await verifyBars(env, w);
    return {
      mode: o.mode,
      trades: w.totalTrades,
      msgs: w.batches.length,
      publishSeconds,
      appliedSeconds: (tApplied - t0) / 1000,
      storedSeconds: (tStored - t0) / 1000,
      appliedTradesPerSec: w.totalTrades / ((tApplied - t0) / 1000),
      endToEndTradesPerSec: w.totalTrades / ((tStored - t0) / 1000),
      expectedBars,
      storedBars: await count1m(env, w.ex),
      revisedBars: revised,
      mismatches,
      quarantined: (await metricSum(metrics.quarantined, { source: 'symbol' })) - quarantined0,
      restarts: (await metricSum(metrics.actorRestarts, { kind: 'symbol' })) - restarts0,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    await removeExchange(env, cluster, w.ex);
    await cluster.stop();
  }
}
