/**
 * Leader decisions over real KV buckets and PostgreSQL, with each supervisor's time on its own
 * FakeClock: the liveness sweep moves a silent worker's actors from heartbeat timestamps alone
 * (NATS 2.9 sends no event when a TTL expires a key), and a leader that wakes up after a newer
 * leader took over cannot overwrite that leader's placement. Worker records are written by the
 * test, as heartbeats would be. The buckets' own TTLs are long, so the server expires nothing
 * during a test: what counts as dead or expired is decided by the fake clocks.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { listKeys, type Topology } from '../core/nats.ts';
import {
  actorIds,
  assignmentSchema,
  BUCKETS,
  decodeJson,
  decodeWith,
  kvKeys,
  serviceSubjects,
} from '../core/protocol/index.ts';
import { type ClusterState, clusterState } from '../test/support/cluster-state.ts';
import { eventually, testLog } from '../test/support/infra.ts';
import { ClusterSupervisor } from './supervisor.ts';

const T0 = Date.UTC(2024, 0, 1);
/** The desired set with no symbols: the bar writer and the alert dispatcher. */
const ACTORS = [actorIds.alertDispatcher(), actorIds.writer()].sort();

describe('cluster supervisor on a fake clock', () => {
  let cluster: ClusterState;
  let topoA: Topology;
  let topoB: Topology;
  const running: ClusterSupervisor[] = [];

  beforeAll(async () => {
    cluster = await clusterState();
    topoA = cluster.topo;
    topoB = await cluster.connect('supervisor-b');
  });

  afterAll(async () => {
    for (const s of running) await s.stop().catch(() => {});
    await cluster?.[Symbol.asyncDispose]();
  });

  beforeEach(async () => {
    for (const s of running.splice(0)) await s.stop();
    await cluster.reset();
  });

  async function supervisor(id: string, topo: Topology, clock: FakeClock): Promise<ClusterSupervisor> {
    const { cfg, db } = cluster;
    const s = new ClusterSupervisor({ id, topo, cfg, pool: db.pool, clock, log: testLog });
    running.push(s);
    await s.start();
    return s;
  }

  const heartbeat = (worker: string, at: number) => cluster.heartbeat(worker, at);

  /** actor id → worker and epoch, as stored. */
  async function stored(): Promise<Record<string, { worker: string; epoch: number; revision: number }>> {
    const out: Record<string, { worker: string; epoch: number; revision: number }> = {};
    for (const k of await listKeys(topoA.jsm, BUCKETS.actorAssign)) {
      const e = await topoA.kv.assign.get(k);
      if (e?.operation !== 'PUT') continue;
      const a = decodeWith(assignmentSchema, e.value);
      if (a.ok) out[k] = { worker: a.value.worker, epoch: a.value.epoch, revision: e.revision };
    }
    return out;
  }

  const placedOn = async (workers: string[]) =>
    eventually(
      async () => {
        const s = await stored();
        const ws = ACTORS.map((id) => s[id]?.worker);
        return JSON.stringify([...ws].sort()) === JSON.stringify([...workers].sort()) ? s : null;
      },
      `actors placed on ${workers.join(', ')}`,
    );

  it("moves a silent worker's actors once its heartbeat is older than the TTL, not before", async () => {
    const clock = new FakeClock(T0);
    await heartbeat('w1', T0);
    await heartbeat('w2', T0);
    const sup = await supervisor('A', topoA, clock);
    const before = await placedOn(['w1', 'w2']);
    const onW2 = ACTORS.find((id) => before[id]!.worker === 'w2')!;
    // w1 keeps beating; w2 went silent at T0 (its key would still be in the bucket).
    const step = async (ms: number) => {
      clock.advance(ms);
      await heartbeat('w1', clock.now());
      await sup.lease.tick();
      await sup.reconcile(); // may join a pass the timer started
      await sup.reconcile(); // a pass that saw this heartbeat and this time
    };
    for (let t = 0; t < cluster.cfg.health.ttlMs; t += 500) await step(500);
    expect(clock.now() - T0).toBe(cluster.cfg.health.ttlMs);
    expect((await stored())[onW2]).toEqual(before[onW2]);
    await step(1);
    const after = await stored();
    expect(after[onW2]!.worker).toBe('w1');
    expect(after[onW2]!.epoch).toBe(before[onW2]!.epoch);
  });

  it("a leader that wakes after a newer leader took over cannot overwrite that leader's placement", async () => {
    const clockA = new FakeClock(T0);
    const clockB = new FakeClock(T0);
    await heartbeat('w1', T0);
    await heartbeat('w2', T0);
    const a = await supervisor('A', topoA, clockA);
    const first = await placedOn(['w1', 'w2']);
    const b = await supervisor('B', topoB, clockB);
    expect(b.lease.isLeader).toBe(false);

    // A pauses. While it sleeps, its lease key expires and w2 dies; only w1 keeps beating.
    clockB.advance(cluster.cfg.health.ttlMs + 500);
    await heartbeat('w1', clockB.now());
    await b.lease.tick(); // the attempt the advance started (A still held the key) ends first
    await topoB.kv.leader.delete(kvKeys.supervisorLeader);
    await b.lease.tick();
    expect(b.lease.isLeader).toBe(true);
    await b.reconcile();
    const newer = await placedOn(['w1', 'w1']);
    const moved = ACTORS.find((id) => first[id]!.worker === 'w2')!;
    expect(newer[moved]!.epoch).toBe(b.lease.epoch);
    // A's watch has delivered B's writes, so A's revisions are current: only the term stops it.
    await eventually(async () => {
      const reply = await topoA.nc.request(serviceSubjects.instance('supervisor', 'A', 'actors'), '{}');
      const seen = decodeJson(reply.data);
      const list = seen.ok ? (seen.value as { worker: string }[]) : [];
      return list.length === ACTORS.length && list.every((x) => x.worker === 'w1');
    }, "A's cache shows B's placement");

    // A wakes: its clock has not moved, so it still believes it leads and sees w2 alive.
    expect(a.lease.isLeader).toBe(true);
    await a.reconcile();
    expect(a.lease.isLeader).toBe(false);
    expect(await stored()).toEqual(newer);
    expect(b.lease.isLeader).toBe(true);
    expect(first[ACTORS[0]!]!.epoch).toBeLessThan(b.lease.epoch);
  });
});
