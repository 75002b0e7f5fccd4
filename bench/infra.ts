/**
 * Private infrastructure for one benchmark run: a nats-server on a temporary store and a free
 * port, a fresh migrated database (dropped at the end), a stderr logger, and the in-process
 * tickmesh roles (supervisor + worker, optionally the gateway) that the sections drive.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { pino } from 'pino';
import type { Worker } from '../actors/worker.ts';
import { type Config, loadConfig, mergeDeep, natsPasswordVariable } from '../core/config.ts';
import { createPool, type Pool } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { migrate } from '../core/migrate.ts';
import { connectAs, ensureTopology, type Topology } from '../core/nats.ts';
import { NATS_PRINCIPALS } from '../core/nats-permissions.ts';
import { actorIds, type ExchangeKind } from '../core/protocol/index.ts';
import { startNatsServer } from '../launcher/embedded-nats.ts';
import type { NatsPasswords } from '../launcher/nats-auth.ts';
import {
  type RoleHandle,
  startGatewayRole,
  startSupervisorRole,
  startWorkerRole,
} from '../launcher/roles.ts';

export const ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Application logs go to stderr (warnings and up), so stdout carries only the table. */
export const log: Logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2));

export function progress(section: string, msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)} ${section}] ${msg}\n`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Wall clock with sub-millisecond resolution (comparable across the whole process). */
export const nowMs = () => performance.timeOrigin + performance.now();

/** Polls `probe` every `everyMs` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  what: string,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface BenchNats {
  url: string;
  /** Its users' passwords (authorization is always on). */
  passwords: NatsPasswords;
  /** Pid of the nats-server child (from its pid file), for RSS sampling. */
  pid: number | null;
  stop(): Promise<void>;
}

export async function startBenchNats(): Promise<BenchNats> {
  const dir = mkdtempSync(join(tmpdir(), 'tickmesh-bench-nats-'));
  const server = await startNatsServer(dir, log, 0);
  let pid: number | null = null;
  try {
    pid = Number(readFileSync(join(dir, 'nats-server.pid'), 'utf8').trim()) || null;
  } catch {
    pid = null;
  }
  return {
    url: server.url,
    passwords: server.passwords,
    pid,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface BenchDb {
  url: string;
  name: string;
  pool: Pool;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export async function createBenchDb(): Promise<BenchDb> {
  const name = `tm_bench_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  await migrate(url, log);
  const pool = createPool(url, 4);
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => {});
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export interface BenchEnv {
  nats: BenchNats;
  db: BenchDb;
  /** The bench's own NATS connection and topology (publishing, KV reads). */
  topo: Topology;
}

export async function openTopology(nats: BenchNats): Promise<Topology> {
  const cfg = benchConfigFor(nats, '');
  return ensureTopology(await connectAs(cfg, 'operator', 'tickmesh-bench'), cfg);
}

/** NATS_URL and every NATS_PASSWORD_* for a role run as a child process. */
export function natsEnv(nats: BenchNats): Record<string, string> {
  return {
    NATS_URL: nats.url,
    ...Object.fromEntries(NATS_PRINCIPALS.map((p) => [natsPasswordVariable(p), nats.passwords[p]])),
  };
}

function benchConfigFor(nats: BenchNats, dbUrl: string, overrides: Record<string, unknown> = {}): Config {
  const base: Record<string, unknown> = {
    logLevel: 'warn',
    nats: { url: nats.url, passwords: nats.passwords },
    database: { url: dbUrl || 'postgres://unused', poolMax: 5 },
    gateway: { host: '127.0.0.1', port: 0 },
    metricsPort: 0,
    sim: { enabled: false },
  };
  return loadConfig({}, mergeDeep(base, overrides));
}

/** Defaults of core/config.ts plus the bench's infrastructure; `overrides` as in the config file. */
export function benchConfig(env: BenchEnv, overrides: Record<string, unknown> = {}): Config {
  return benchConfigFor(env.nats, env.db.url, overrides);
}

export async function addExchange(pool: Pool, id: string, kind: ExchangeKind, symbols: string[]) {
  await pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ($1, $1, $2)`, [id, kind]);
  await pool.query(`INSERT INTO symbols (exchange, symbol) SELECT $1, unnest($2::text[])`, [id, symbols]);
}

export interface Cluster {
  worker: Worker;
  /** Base URL of the gateway, when started. */
  gatewayUrl: string | null;
  stop(): Promise<void>;
}

let clusters = 0;

/** Supervisor + worker (+ gateway) in this process, as `tickmesh dev` would run them. */
export async function startCluster(cfg: Config, withGateway = false): Promise<Cluster> {
  const roles: RoleHandle[] = [];
  const supervisor = await startSupervisorRole(cfg, log);
  roles.push(supervisor);
  // A fresh worker id per cluster: assignments left by the previous one never start here.
  const worker = await startWorkerRole(cfg, log, undefined, `bench-w${++clusters}`);
  roles.push(worker);
  let gatewayUrl: string | null = null;
  if (withGateway) {
    const gw = await startGatewayRole(cfg, log);
    roles.push(gw);
    gatewayUrl = gw.url;
  }
  return {
    worker: worker.worker,
    gatewayUrl,
    async stop() {
      // A role that cannot stop (e.g. an actor stuck retrying) must not hang the whole bench.
      for (const r of roles.reverse())
        await withTimeout(r.stop(), 30_000, `stopping the ${r.name} role`).catch((e) =>
          log.error({ err: e }, 'role stop failed'),
        );
    },
  };
}

/** Waits until every symbol actor of `ex` (and the writer) reports `running` in KV actor-health. */
export async function waitForActors(topo: Topology, ex: string, symbols: string[], timeoutMs = 60_000) {
  const ids = [actorIds.writer(), ...symbols.map((s) => actorIds.symbol(ex, s))];
  await waitFor(
    async () => {
      for (const id of ids) {
        const e = await topo.kv.health.get(id);
        if (e?.operation !== 'PUT' || !e.string().includes('"status":"running"')) return false;
      }
      return true;
    },
    `actors of ${ex} running`,
    timeoutMs,
    100,
  );
}

/**
 * Removes an exchange (its symbols cascade) while the cluster still runs, so the supervisor
 * stops its actors and the next section starts from a clean desired set. Best effort: the
 * cluster is stopped right after anyway, so this waits at most `waitMs`.
 */
export async function removeExchange(env: BenchEnv, cluster: Cluster, ex: string, waitMs = 10_000) {
  await env.db.pool.query('DELETE FROM exchanges WHERE id = $1', [ex]);
  const prefix = `symbol.${ex}.`;
  const t0 = Date.now();
  await waitFor(
    () => !cluster.worker.actorIds().some((id) => id.startsWith(prefix) || id === actorIds.exchange(ex)),
    `actors of ${ex} stopped`,
    waitMs,
    100,
  ).then(
    () => progress('cleanup', `actors of ${ex} stopped ${Date.now() - t0} ms after the exchange was deleted`),
    () => progress('cleanup', `actors of ${ex} still running ${waitMs} ms after the exchange was deleted`),
  );
}

type LabelledMetric = {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
};

/** Sum of a prom-client metric's values whose labels include `match`. */
export async function metricSum(metric: LabelledMetric, match: Record<string, string> = {}) {
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values)
    if (Object.entries(match).every(([k, want]) => v.labels[k] === want)) sum += v.value;
  return sum;
}

let forceGc: (() => void) | null = null;

/** Heap used after a full collection (gc exposed at run time, as --expose-gc would). */
export function liveHeapMb(): number {
  if (!forceGc) {
    setFlagsFromString('--expose-gc');
    forceGc = runInNewContext('gc') as () => void;
  }
  forceGc();
  forceGc();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}
