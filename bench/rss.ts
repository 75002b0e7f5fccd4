/**
 * Section 4: memory over a long run. The whole system (supervisor, worker with symbol actors
 * and writer, gateway with one subscriber per symbol) runs in this process under a steady live
 * load; RSS and heap are sampled every few seconds. After a warm-up (2 min, or 20 % of a shorter
 * run) the least-squares slope of RSS says whether memory is flat.
 */
import { readFileSync } from 'node:fs';
import { metrics } from '../core/metrics.ts';
import {
  addExchange,
  type BenchEnv,
  benchConfig,
  liveHeapMb,
  metricSum,
  nowMs,
  progress,
  removeExchange,
  sleep,
  startCluster,
  waitForActors,
} from './infra.ts';
import { LiveFeed, watchCandles } from './live.ts';
import { slope, slopeStdErr } from './report.ts';

const MB = 1024 * 1024;

export interface RssSample {
  tSec: number;
  rssMb: number;
  heapUsedMb: number;
  natsRssMb: number | null;
}

/** The memory trend of a sampled run after its warm-up. */
export interface RssTrend {
  rssAfterWarmupMb: number;
  rssEndMb: number;
  slopeMbPerMin: number;
  /** Standard error of the RSS slope (how much of it is noise). */
  slopeStdErr: number;
  heapSlopeMbPerMin: number;
  flat: boolean;
}

/** Heap in use right after a full GC, before and after `seconds` more load (JS leak check). */
export interface LiveHeapCheck {
  startMb: number;
  endMb: number;
  seconds: number;
  mbPerMin: number;
}

export interface RssResult extends RssTrend {
  minutes: number;
  ratePerSec: number;
  warmupSec: number;
  samples: RssSample[];
  natsSlopeMbPerMin: number;
  liveHeap: LiveHeapCheck;
  published: number;
  applied: number;
  candleUpdates: number;
}

function natsRssMb(pid: number | null): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export const FLAT_MB_PER_MIN = 1;

/** Samples from `warmupSec` on (half a second early, for sampling jitter). */
export const afterWarmup = <S extends { tSec: number }>(samples: readonly S[], warmupSec: number): S[] =>
  samples.filter((s) => s.tSec >= warmupSec - 0.5);

/** Least-squares slope in MB/min of one measure over samples (nulls skipped). */
export const mbPerMin = <S extends { tSec: number }>(samples: readonly S[], pick: (s: S) => number | null) =>
  slope(samples.flatMap((s) => (pick(s) === null ? [] : [{ x: s.tSec / 60, y: pick(s)! }])));

/** RSS at both ends of the run after warm-up, and the RSS and heap slopes (flat below `flatMbPerMin`). */
export function rssTrend(
  samples: readonly { tSec: number; rssMb: number; heapUsedMb: number }[],
  warmupSec: number,
  flatMbPerMin = FLAT_MB_PER_MIN,
): RssTrend {
  const post = afterWarmup(samples, warmupSec);
  const fit = post.map((s) => ({ x: s.tSec / 60, y: s.rssMb }));
  const slopeMbPerMin = slope(fit);
  return {
    rssAfterWarmupMb: post[0]?.rssMb ?? Number.NaN,
    rssEndMb: samples.at(-1)?.rssMb ?? Number.NaN,
    slopeMbPerMin,
    slopeStdErr: slopeStdErr(fit),
    heapSlopeMbPerMin: mbPerMin(post, (s) => s.heapUsedMb),
    flat: slopeMbPerMin < flatMbPerMin,
  };
}

/** The live heap after a full GC, and again after `seconds` more of whatever load is running. */
export async function liveHeapCheck(seconds: number): Promise<LiveHeapCheck> {
  const startMb = liveHeapMb();
  await sleep(seconds * 1000);
  const endMb = liveHeapMb();
  return { startMb, endMb, seconds, mbPerMin: ((endMb - startMb) * 60) / seconds };
}

export async function runRss(
  env: BenchEnv,
  o: { minutes: number; ratePerSec: number; symbols: string[]; sampleSec: number },
): Promise<RssResult> {
  const ex = 'rss';
  const cfg = benchConfig(env);
  await addExchange(env.db.pool, ex, 'external', o.symbols);
  const cluster = await startCluster(cfg, true);
  try {
    await waitForActors(env.topo, ex, o.symbols);
    let candleUpdates = 0;
    const watch = await watchCandles(cluster.gatewayUrl!, ex, o.symbols, () => {
      candleUpdates++;
    });
    const applied0 = await metricSum(metrics.tradesIn, { exchange: ex });
    const feed = new LiveFeed(env.topo.js, ex, o.symbols, o.ratePerSec, { trackPrices: false });
    const durationSec = o.minutes * 60;
    const warmupSec = Math.min(120, 0.2 * durationSec);
    progress('rss', `${o.minutes} min at ${o.ratePerSec} trades/s; sampling every ${o.sampleSec} s`);
    const samples: RssSample[] = [];
    const t0 = nowMs();
    feed.start();
    for (let i = 0; ; i++) {
      const mem = process.memoryUsage();
      const s: RssSample = {
        tSec: (nowMs() - t0) / 1000,
        rssMb: mem.rss / MB,
        heapUsedMb: mem.heapUsed / MB,
        natsRssMb: natsRssMb(env.nats.pid),
      };
      samples.push(s);
      if (i % 3 === 0)
        progress(
          'rss',
          `t=${s.tSec.toFixed(0)} s rss ${s.rssMb.toFixed(1)} MB heap ${s.heapUsedMb.toFixed(1)} MB nats ${s.natsRssMb?.toFixed(1) ?? '?'} MB`,
        );
      if (s.tSec >= durationSec - 0.5) break;
      await sleep(Math.max(0, t0 + (i + 1) * o.sampleSec * 1000 - nowMs()));
    }
    // Leak check, after the sampled run so forced collections do not shape its RSS curve: the live
    // heap after a full GC now, and again after more of the same load.
    const checkSec = Math.min(120, Math.max(20, durationSec / 5));
    progress('rss', `live-heap check: full GC, ${checkSec} s more load, full GC`);
    const liveHeap = await liveHeapCheck(checkSec);
    feed.stop();
    await sleep(3000);
    const applied = (await metricSum(metrics.tradesIn, { exchange: ex })) - applied0;
    await watch.close();
    return {
      minutes: o.minutes,
      ratePerSec: o.ratePerSec,
      warmupSec,
      samples,
      ...rssTrend(samples, warmupSec),
      natsSlopeMbPerMin: mbPerMin(afterWarmup(samples, warmupSec), (s) => s.natsRssMb),
      liveHeap,
      published: feed.published,
      applied,
      candleUpdates,
    };
  } finally {
    await removeExchange(env, cluster, ex);
    await cluster.stop();
  }
}
