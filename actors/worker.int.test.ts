/**
 * A worker's SIGTERM drain and its assignment resync, over real KV buckets, a real bar-writer
 * actor and PostgreSQL, with the worker's time on a FakeClock. The test plays the leader: it
 * writes assignments and the other worker's heartbeat itself. The buckets' own TTLs are long,
 * so the server expires nothing during a test.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { type ActorSpec, actorIds, decodeWith, workerRecordSchema } from '../core/protocol/index.ts';
import { type ClusterState, clusterState } from '../test/support/cluster-state.ts';
import { eventually, testLog } from '../test/support/infra.ts';
import { DRAIN_TIMEOUT_MS, RESYNC_MS, Worker } from './worker.ts';

const T0 = Date.UTC(2024, 0, 1);
const WRITER: ActorSpec = { id: actorIds.writer(), kind: 'writer' };

describe('worker on a fake clock', () => {
  let cluster: ClusterState;
  const workers: Worker[] = [];

  beforeAll(async () => {
    cluster = await clusterState();
  });

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => {});
    await cluster?.[Symbol.asyncDispose]();
  });

  beforeEach(async () => {
    for (const w of workers.splice(0)) await w.stop();
    await cluster.reset();
  });

  async function hosting(id: string, clock: FakeClock): Promise<Worker> {
    const { topo, cfg, db } = cluster;
    const w = new Worker({ id, topo, cfg, pool: db.pool, clock, log: testLog });
    workers.push(w);
    await w.start();
    return w;
  }

  /** w1 hosting the bar writer while w2's last heartbeat was at `w2At`. */
  async function w1WithWriter(clock: FakeClock, w2At: number): Promise<Worker> {
    await cluster.heartbeat('w2', w2At);
    await cluster.assign(WRITER, 'w1');
    const w1 = await hosting('w1', clock);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted');
    return w1;
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
    const w1 = await w1WithWriter(clock, T0);
    const stop = await drainedStop(w1);
    expect(w1.status().handoverDeadline).toBe(T0 + DRAIN_TIMEOUT_MS);
    // Its record says draining, which is what makes the leader move its actors away.
    const rec = decodeWith(workerRecordSchema, (await cluster.topo.kv.workers.get('w1'))!.value);
    expect(rec.ok && rec.value.draining).toBe(true);
    await cluster.assign(WRITER, 'w2');
    await stop.promise;
    expect(clock.now()).toBe(T0);
    expect(w1.actorIds()).toEqual([]);
  });

  it('stops its actors anyway once the drain timeout has passed, not before', async () => {
    const clock = new FakeClock(T0);
    const w1 = await w1WithWriter(clock, T0);
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
    const w1 = await w1WithWriter(clock, T0 - cluster.cfg.health.ttlMs - 1); // w2 silent too long
    await w1.stop({ drain: true });
    expect(clock.now()).toBe(T0);
    expect(w1.actorIds()).toEqual([]);
  });

  it('its periodic resync picks up an assignment its watch missed', async () => {
    const clock = new FakeClock(T0);
    const w1 = await hosting('w1', clock);
    // The watch misses what follows (as after a reconnect that has not caught up yet).
    (w1 as unknown as { watcher: { stop(): void } }).watcher.stop();
    await cluster.assign(WRITER, 'w1');
    clock.advance(RESYNC_MS - 1);
    await new Promise((r) => setImmediate(r));
    expect(w1.actorIds()).toEqual([]);
    clock.advance(1);
    await eventually(async () => w1.actorIds().includes(WRITER.id), 'writer hosted after a resync');
  });
});
