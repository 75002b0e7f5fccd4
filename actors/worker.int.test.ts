/**
 * A worker's SIGTERM drain and its assignment resync, over real KV buckets, a real bar-writer
 * actor and PostgreSQL, with the worker's time on a FakeClock. The test plays the leader: it
 * writes assignments and the other worker's heartbeat itself. The buckets' own TTLs are long,
 * so the server expires nothing during a test.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { listKeys, type Topology } from '../core/nats.ts';
import {
  type ActorSpec,
  actorIds,
  BUCKETS,
  decodeWith,
  encodeJson,
  SCHEMA_VERSION,
  workerRecordSchema,
} from '../core/protocol/index.ts';
import {
  eventually,
  freshDatabase,
  startTestNats,
  type TestDb,
  type TestNats,
  testConfig,
  testLog,
  topology,
} from '../test/support/infra.ts';
import { DRAIN_TIMEOUT_MS, RESYNC_MS, Worker } from './worker.ts';

const T0 = Date.UTC(2024, 0, 1);
const WRITER: ActorSpec = { id: actorIds.writer(), kind: 'writer' };

describe('worker on a fake clock', () => {
  let nats: TestNats;
  let db: TestDb;
  let cfg: Config;
  let topo: Topology & AsyncDisposable;
  const workers: Worker[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    db = await freshDatabase();
    const long = testConfig(nats, db, { health: { ttlMs: 600_000 }, supervisor: { leaseTtlMs: 600_000 } });
    topo = await topology(long, 'worker-test');
    cfg = testConfig(nats, db);
  });

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => {});
    await topo?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
    await nats?.[Symbol.asyncDispose]();
  });

  beforeEach(async () => {
    for (const w of workers.splice(0)) await w.stop();
    for (const k of await listKeys(topo.jsm, BUCKETS.actorAssign)) await topo.kv.assign.purge(k);
    for (const k of await listKeys(topo.jsm, BUCKETS.workers)) await topo.kv.workers.purge(k);
  });

  async function assign(spec: ActorSpec, worker: string): Promise<void> {
    const a = { v: SCHEMA_VERSION, worker, spec, epoch: 1, assignedAt: T0 };
    await topo.kv.assign.put(spec.id, encodeJson(a));
  }

  async function heartbeat(worker: string, at: number): Promise<void> {
    const rec = { v: SCHEMA_VERSION, id: worker, host: 'test', pid: 1, startedAt: T0, updatedAt: at };
    await topo.kv.workers.put(worker, encodeJson({ ...rec, draining: false }));
  }

  async function hosting(id: string, clock: FakeClock): Promise<Worker> {
    const w = new Worker({ id, topo, cfg, pool: db.pool, clock, log: testLog });
    workers.push(w);
    await w.start();
    return w;
  }

  /** Starts a drained stop and waits until the worker waits for its actors to move. */
  async function drainedStop(w: Worker) {
    const stop = { done: false, promise: Promise.resolve() };
    stop.promise = w.stop({ drain: true }).then(() => {
      stop.done = true;
    });
    await eventually(async () => w.status().handoverDeadline, 'handing actors over');
    return stop;
  }

  it('exits as soon as its actors have moved, without waiting for the timeout', async () => {
    const clock = new FakeClock(T0);
    await heartbeat('w2', T0);
    await assign(WRITER, 'w1');
    const w1 = await hosting('w1', clock);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted');
    const stop = await drainedStop(w1);
    expect(w1.status().handoverDeadline).toBe(T0 + DRAIN_TIMEOUT_MS);
    // Its record says draining, which is what makes the leader move its actors away.
    const rec = decodeWith(workerRecordSchema, (await topo.kv.workers.get('w1'))!.value);
    expect(rec.ok && rec.value.draining).toBe(true);
    await assign(WRITER, 'w2');
    await stop.promise;
    expect(clock.now()).toBe(T0);
    expect(w1.actorIds()).toEqual([]);
  });

  it('stops its actors anyway once the drain timeout has passed, not before', async () => {
    const clock = new FakeClock(T0);
    await heartbeat('w2', T0);
    await assign(WRITER, 'w1');
    const w1 = await hosting('w1', clock);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted');
    const stop = await drainedStop(w1);
    clock.advance(DRAIN_TIMEOUT_MS - 1);
    await new Promise((r) => setImmediate(r));
    expect(stop.done).toBe(false);
    expect(w1.actorIds()).toEqual([WRITER.id]);
    clock.advance(1);
    await stop.promise;
    expect(w1.actorIds()).toEqual([]);
  }, 10_000); // far below the drain timeout: only the fake clock can end the wait in time

  it('does not wait when no other worker is alive to take its actors', async () => {
    const clock = new FakeClock(T0);
    await heartbeat('w2', T0 - cfg.health.ttlMs - 1); // silent for longer than the TTL
    await assign(WRITER, 'w1');
    const w1 = await hosting('w1', clock);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted');
    await w1.stop({ drain: true });
    expect(clock.now()).toBe(T0);
    expect(w1.actorIds()).toEqual([]);
  });

  it('its periodic resync picks up an assignment its watch missed', async () => {
    const clock = new FakeClock(T0);
    const w1 = await hosting('w1', clock);
    // The watch misses what follows (as after a reconnect that has not caught up yet).
    (w1 as unknown as { watcher: { stop(): void } }).watcher.stop();
    await assign(WRITER, 'w1');
    clock.advance(RESYNC_MS - 1);
    await new Promise((r) => setImmediate(r));
    expect(w1.actorIds()).toEqual([]);
    clock.advance(1);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted after a resync');
  });
});
