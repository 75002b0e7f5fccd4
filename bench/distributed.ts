/**
 * Distributed figures (issue "distributed actors"): failover time of a killed worker process,
 * and pipeline throughput with one versus two worker processes. Workers are real child
 * processes (`tickmesh worker`); the supervisor runs in the bench process. Default
 * configuration (heartbeat 1 s, health TTL 3 s), because that is what users run.
 */

import { listKeys } from '../core/nats.ts';
import { actorIds, BUCKETS, consumers, decodeJson, STREAMS } from '../core/protocol/index.ts';
import { startSupervisorRole } from '../launcher/roles.ts';
import { type RoleProcess, spawnRole } from '../test/support/processes.ts';
import { publishAll } from './ceiling.ts';
import { addExchange, type BenchEnv, benchConfig, log, natsEnv, progress, waitFor } from './infra.ts';
import { buildWorkload } from './workload.ts';

export interface FailoverResult {
  samplesMs: number[];
  p50: number;
  max: number;
}

export interface ScalingResult {
  workers: number;
  trades: number;
  seconds: number;
  tradesPerSec: number;
}

interface Health {
  id: string;
  status: string;
  worker: string;
}

async function healthById(env: BenchEnv): Promise<Map<string, Health>> {
  const out = new Map<string, Health>();
  const kv = env.topo.kv.health;
  for (const k of await listKeys(env.topo.jsm, BUCKETS.actorHealth)) {
    const e = await kv.get(k);
    const v = e?.operation === 'PUT' ? decodeJson(e.value) : null;
    if (v?.ok) out.set(k, v.value as Health);
  }
  return out;
}

function workerEnv(env: BenchEnv, id: string): Record<string, string> {
  return {
    ...natsEnv(env.nats),
    DATABASE_URL: env.db.url,
    SIM_ENABLED: 'false',
    TICKMESH_WORKER_ID: id,
    LOG_LEVEL: 'error',
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : Number.NaN;
};

/** Kills the busiest worker `kills` times and measures kill → every actor running elsewhere. */
export async function runFailover(env: BenchEnv, kills: number): Promise<FailoverResult> {
  const ex = 'failover';
  const symbols = ['A1', 'A2', 'A3', 'A4', 'A5', 'A6'];
  await addExchange(env.db.pool, ex, 'external', symbols);
  const ids = [actorIds.writer(), ...symbols.map((s) => actorIds.symbol(ex, s))];
  const supervisor = await startSupervisorRole(benchConfig(env), log);
  const workers = new Map<string, RoleProcess>();
  let next = 1;
  const spawn = () => {
    const id = `fw${next++}`;
    workers.set(id, spawnRole('worker', workerEnv(env, id)));
  };
  for (let i = 0; i < 3; i++) spawn();
  const samples: number[] = [];
  try {
    for (let k = 0; k < kills; k++) {
      // Steady state: every actor running, spread over the three live workers.
      const placed = await waitFor(
        async () => {
          const h = await healthById(env);
          const running = ids
            .map((id) => h.get(id))
            .filter((a) => a?.status === 'running' && workers.has(a.worker));
          if (running.length !== ids.length) return null;
          const counts = [...workers.keys()].map((w) => running.filter((a) => a!.worker === w).length);
          return Math.min(...counts) >= 2 ? running : null;
        },
        'actors spread over three workers',
        60_000,
        100,
      );
      const byWorker = new Map<string, number>();
      for (const a of placed) byWorker.set(a!.worker, (byWorker.get(a!.worker) ?? 0) + 1);
      const victim = [...byWorker.entries()].sort((a, b) => b[1] - a[1])[0]![0];
      const t0 = performance.now();
      await workers.get(victim)!.kill('SIGKILL');
      workers.delete(victim);
      await waitFor(
        async () => {
          const h = await healthById(env);
          return ids.every((id) => {
            const a = h.get(id);
            return a?.status === 'running' && a.worker !== victim;
          });
        },
        'actors running elsewhere',
        60_000,
        25,
      );
      const ms = performance.now() - t0;
      samples.push(ms);
      progress(
        'failover',
        `kill ${k + 1}/${kills}: ${victim} (${byWorker.get(victim)} actors) → running again in ${ms.toFixed(0)} ms`,
      );
      spawn();
    }
  } finally {
    for (const w of workers.values()) await w.kill('SIGTERM');
    await supervisor.stop();
    await env.db.pool.query('DELETE FROM exchanges WHERE id = $1', [ex]);
  }
  return { samplesMs: samples, p50: median(samples), max: Math.max(...samples) };
}

/** Publishes the same workload with 1 and with 2 worker processes; trades/s until all are applied. */
export async function runScaling(env: BenchEnv, tradesPerSymbol: number): Promise<ScalingResult[]> {
  const results: ScalingResult[] = [];
  for (const n of [1, 2]) {
    const ex = `scale${n}`;
    const symbols = ['S1', 'S2', 'S3', 'S4'];
    await addExchange(env.db.pool, ex, 'external', symbols);
    const supervisor = await startSupervisorRole(benchConfig(env), log);
    const procs = Array.from({ length: n }, (_, i) => spawnRole('worker', workerEnv(env, `${ex}w${i + 1}`)));
    try {
      const ids = symbols.map((s) => actorIds.symbol(ex, s));
      await waitFor(
        async () => {
          const h = await healthById(env);
          const running = ids.map((id) => h.get(id)).filter((a) => a?.status === 'running');
          return running.length === ids.length && new Set(running.map((a) => a!.worker)).size === n;
        },
        `actors of ${ex} on ${n} worker(s)`,
        60_000,
        100,
      );
      const w = buildWorkload({
        ex,
        symbols,
        tradesPerSymbol,
        batchSize: 200,
        tradesPerMs: 1,
        graceMs: 1000,
      });
      const t0 = performance.now();
      await publishAll(env.topo.js, w.batches, 256);
      await waitFor(
        async () => {
          for (const s of symbols) {
            const ci = await env.topo.jsm.consumers.info(STREAMS.trades, consumers.symbolTrades(ex, s));
            if (ci.num_pending > 0 || ci.num_ack_pending > 0) return false;
          }
          return true;
        },
        'all trades applied',
        300_000,
        20,
      );
      const seconds = (performance.now() - t0) / 1000;
      results.push({ workers: n, trades: w.totalTrades, seconds, tradesPerSec: w.totalTrades / seconds });
      progress('scaling', `${n} worker(s): ${(w.totalTrades / seconds).toFixed(0)} trades/s`);
    } finally {
      for (const p of procs) await p.kill('SIGTERM');
      await supervisor.stop();
      await env.db.pool.query('DELETE FROM exchanges WHERE id = $1', [ex]);
    }
  }
  return results;
}
