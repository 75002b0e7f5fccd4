/**
 * Cluster state for tests that run a supervisor or worker on a FakeClock: one nats-server and
 * one database, KV buckets created with long TTLs (so the server expires nothing while a test
 * runs) and a config with the usual short ones, by which the roles judge liveness on their fake
 * clocks. The test plays the rest of the cluster: it writes heartbeats and assignments.
 */
import type { Config } from '../../core/config.ts';
import { listKeys, type Topology } from '../../core/nats.ts';
import { type ActorSpec, BUCKETS, encodeJson, kvKeys, SCHEMA_VERSION } from '../../core/protocol/index.ts';
import { freshDatabase, startTestNats, type TestDb, type TestNats, testConfig, topology } from './infra.ts';

export interface ClusterState extends AsyncDisposable {
  nats: TestNats;
  db: TestDb;
  /** Short TTLs (health 2 s, lease 3 s): what the roles under test use. */
  cfg: Config;
  topo: Topology;
  /** Another connection to the same server (a second supervisor). */
  connect(name: string): Promise<Topology>;
  /** A worker's heartbeat record, stamped `at` (ms). */
  heartbeat(worker: string, at: number): Promise<void>;
  /** An assignment as a leader of term `epoch` writes it. */
  assign(spec: ActorSpec, worker: string, epoch?: number): Promise<void>;
  /** Empties the assignments, the worker records and the leader lease. */
  reset(): Promise<void>;
}

export async function clusterState(): Promise<ClusterState> {
  const nats = await startTestNats();
  const db = await freshDatabase();
  const long = testConfig(nats, db, { health: { ttlMs: 600_000 }, supervisor: { leaseTtlMs: 600_000 } });
  const connections: (Topology & AsyncDisposable)[] = [];
  const connect = async (name: string) => {
    const t = await topology(long, name);
    connections.push(t);
    return t;
  };
  const topo = await connect('cluster-state');
  return {
    nats,
    db,
    cfg: testConfig(nats, db),
    topo,
    connect,
    async heartbeat(worker, at) {
      const rec = { v: SCHEMA_VERSION, id: worker, host: 'test', pid: 1, startedAt: 0, updatedAt: at };
      await topo.kv.workers.put(worker, encodeJson({ ...rec, draining: false }));
    },
    async assign(spec, worker, epoch = 1) {
      await topo.kv.assign.put(
        spec.id,
        encodeJson({ v: SCHEMA_VERSION, worker, spec, epoch, assignedAt: 0 }),
      );
    },
    async reset() {
      for (const k of await listKeys(topo.jsm, BUCKETS.actorAssign)) await topo.kv.assign.purge(k);
      for (const k of await listKeys(topo.jsm, BUCKETS.workers)) await topo.kv.workers.purge(k);
      await topo.kv.leader.purge(kvKeys.supervisorLeader);
    },
    async [Symbol.asyncDispose]() {
      for (const c of connections) await c[Symbol.asyncDispose]();
      await db[Symbol.asyncDispose]();
      await nats[Symbol.asyncDispose]();
    },
  };
}
