/**
 * The distributed system under failure, all roles as real processes on one nats-server and one
 * PostgreSQL: a leader and a standby supervisor, three workers, a gateway, the simulator
 * producing trades. Workers are killed (SIGKILL) and drained (SIGTERM), the leader is killed,
 * NATS restarts, PostgreSQL stops for a minute. Afterwards every closed bar of every symbol
 * equals the bar computed from the full trade sequence, and every actor runs exactly once.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { connectNats, type NatsConnection } from '../core/nats.ts';
import { decodeJson, encodeJson, serviceSubjects } from '../core/protocol/index.ts';
import { type EmbeddedDb, startEmbeddedPostgres } from '../launcher/embedded-postgres.ts';
import { inspect } from '../launcher/inspect.ts';
import { verifyBars } from '../launcher/verify.ts';
import { authEnv, eventually, startTestNats, type TestNats, testLog } from './support/infra.ts';
import { type RoleProcess, spawnRole } from './support/processes.ts';

const ACTORS = 8; // exchange.sim, five symbol actors, writer.bars, alerts.dispatcher

interface Health {
  id: string;
  status: string;
  worker: string;
  sessionId: string;
}

describe('chaos: kills, drains, leader loss, NATS restart, database outage', () => {
  let nats: TestNats;
  let pgDir: string;
  let pg: EmbeddedDb;
  let pgPort: number;
  let nc: NatsConnection;
  const procs = new Map<string, RoleProcess>();

  const env = (extra: Record<string, string>) => ({
    ...nats.env(),
    ...authEnv(),
    DATABASE_URL: pg.url,
    SIM_ENABLED: 'true',
    SIM_RATE: '20',
    BAR_GRACE_MS: '500',
    HEARTBEAT_MS: '500',
    HEALTH_TTL_MS: '2000',
    ...extra,
  });
  const start = (name: string, role: string, extra: Record<string, string> = {}) => {
    procs.set(name, spawnRole(role, env(extra)));
  };

  async function health(): Promise<Health[]> {
    return ((await inspect(nc)).buckets['actor-health'] ?? []).map((r) => r.value as Health);
  }

  /** All actors running, none on an excluded worker; returns id → worker. */
  async function allRunning(
    what: string,
    exclude: string[] = [],
    timeoutMs = 30_000,
  ): Promise<Map<string, string>> {
    return eventually(
      async () => {
        const h = await health();
        const ok = h.filter((a) => a.status === 'running' && !exclude.includes(a.worker));
        return ok.length === ACTORS ? new Map(ok.map((a) => [a.id, a.worker])) : null;
      },
      what,
      timeoutMs,
    );
  }

  async function leaderLease(): Promise<{ pid: string; id: string } | null> {
    const { Kvm } = await import('@nats-io/kv');
    const kv = await new Kvm(nc).open('supervisor-leader');
    const e = await kv.get('leader');
    const v = e?.operation === 'PUT' ? decodeJson(e.value) : null;
    const rec = v?.ok ? (v.value as { pid: number; id: string }) : null;
    return rec ? { pid: String(rec.pid), id: rec.id } : null;
  }
  const leader = async () => (await leaderLease())?.pid ?? null;

  beforeAll(async () => {
    nats = await startTestNats();
    pgDir = mkdtempSync(join(tmpdir(), 'tickmesh-chaos-pg-'));
    chmodSync(pgDir, 0o755);
    pg = await startEmbeddedPostgres(pgDir, testLog, 0);
    pgPort = Number(new URL(pg.url).port);
    await migrate(pg.url, testLog);
    nc = await connectNats(nats.url, 'chaos-test', { user: 'operator', pass: nats.passwords.operator });
    start('sup-a', 'supervisor');
    await eventually(() => leader(), 'a leader');
    start('sup-b', 'supervisor');
    for (const w of ['w1', 'w2', 'w3']) start(w, 'worker', { TICKMESH_WORKER_ID: w });
    start('gateway', 'gateway', { PORT: '0' });
  });

  afterAll(async () => {
    for (const p of procs.values()) await p.kill('SIGKILL');
    await nc?.close();
    await pg?.stop();
    await nats?.[Symbol.asyncDispose]();
    if (pgDir) rmSync(pgDir, { recursive: true, force: true });
  });

  const began = Date.now();
  const step = (what: string) =>
    process.stderr.write(`chaos +${((Date.now() - began) / 1000).toFixed(1)}s: ${what}\n`);

  it('keeps every bar right and every actor running exactly once', { timeout: 600_000 }, async () => {
    // Workers join one by one; the leader spreads the actors evenly once all three are live.
    let last = new Map<string, string>();
    const placed = await eventually(
      async () => {
        last = await allRunning('all actors running');
        const counts = ['w1', 'w2', 'w3'].map((w) => [...last.values()].filter((x) => x === w).length);
        return Math.min(...counts) >= 2 && Math.max(...counts) - Math.min(...counts) <= 1 ? last : null;
      },
      'actors spread over three workers',
      30_000,
    ).catch((e) => {
      throw new Error(`${e.message}; placement ${JSON.stringify([...last])}`);
    });

    step("1. kill -9 of the simulator's worker");
    // 1. kill -9 the worker that runs the simulator: its actors run elsewhere within 10 s.
    const victim = placed.get('exchange.sim')!;
    const t0 = Date.now();
    await procs.get(victim)!.kill('SIGKILL');
    await allRunning('failover after SIGKILL', [victim], 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    start('w4', 'worker', { TICKMESH_WORKER_ID: 'w4' });

    step('2. SIGTERM drain');
    // 2. SIGTERM a worker: it hands its actors over and exits cleanly.
    const now = await allRunning('after failover', [victim]);
    const drained = [...new Set(now.values())].find((w) => w !== 'w4' && w !== victim)!;
    step(`draining ${drained} (victim was ${victim}); placement ${JSON.stringify([...now])}`);
    expect(await procs.get(drained)!.kill('SIGTERM')).toBe(0);
    await allRunning('after drain', [drained]);

    step('3. leader paused past its lease (SIGSTOP), a worker dies meanwhile, the old leader wakes up');
    // 3. A stale leader must not act: pause it past its lease, let the standby take over and
    //    handle a worker failure, then resume the old one and check it wrote nothing.
    const oldPid = await leader();
    const oldLeader = [...procs.values()].find((p) => String(p.child.pid) === oldPid)!;
    oldLeader.child.kill('SIGSTOP');
    await eventually(
      async () => {
        const l = await leader();
        return l && l !== oldPid;
      },
      'standby leader',
      30_000,
    );
    const { Kvm, KvWatchInclude } = await import('@nats-io/kv');
    const assignKv = await new Kvm(nc).open('actor-assign');
    const writes: { key: string; epoch: number }[] = [];
    const watch = await assignKv.watch({ include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of watch) {
        const v = e.operation === 'PUT' ? decodeJson(e.value) : null;
        if (v?.ok) writes.push({ key: e.key, epoch: (v.value as { epoch: number }).epoch });
      }
    })();
    const before = await allRunning('before second kill');
    const second = [...new Set(before.values())].find((w) => w !== victim && w !== drained)!;
    step(`killing ${second}`);
    await procs.get(second)!.kill('SIGKILL');
    start('w5', 'worker', { TICKMESH_WORKER_ID: 'w5' });
    await allRunning('failover under the new leader', [victim, drained, second], 20_000);
    oldLeader.child.kill('SIGCONT');
    // An absence check: give the woken leader a few of its poll intervals to misbehave.
    await new Promise((r) => setTimeout(r, 3000));
    watch.stop();
    // Every write since the takeover came from one leadership term: the new leader's.
    expect(writes.length).toBeGreaterThan(0);
    expect(new Set(writes.map((w) => w.epoch)).size).toBe(1);
    const current = (await leaderLease())!;
    const status = decodeJson(
      (
        await nc.request(serviceSubjects.instance('supervisor', current.id, 'status'), encodeJson({}), {
          timeout: 5000,
        })
      ).data,
    );
    expect(status.ok && (status.value as { leader: boolean; epoch: number }).epoch).toBe(writes[0]!.epoch);
    await oldLeader.kill('SIGKILL');

    step('4. NATS restart');
    // 4. NATS restarts (same store): everything reconnects and resumes.
    await nats.restart();
    await allRunning('after NATS restart', [victim, drained, second], 60_000);

    step('5. PostgreSQL down for a minute');
    // 5. PostgreSQL down for a minute: the writer waits and catches up, nothing is lost.
    await pg.stop();
    await new Promise((r) => setTimeout(r, 60_000));
    pg = await startEmbeddedPostgres(pgDir, testLog, pgPort);
    expect(Number(new URL(pg.url).port)).toBe(pgPort);
    // The comparison must reach past every failure above: up to the end of the minute in which
    // the database came back (at most a minute and a grace away, whatever the wall clock).
    const coveredTo = Math.ceil(Date.now() / 60_000) * 60_000;

    step('6. verifying bars');
    // Let a couple more minutes close, then compare every stored bar with the trade stream.
    const pool = createPool(pg.url, 2);
    try {
      const reports = await eventually(
        async () => {
          const r = await verifyBars(nc, pool, 500);
          const oneMinute = r.filter((x) => x.timeframe === '1m');
          const bad = r.filter((x) => x.missing || x.different || x.extra);
          return oneMinute.length === 5 &&
            oneMinute.every((x) => x.expected >= 1 && Date.parse(x.to) >= coveredTo) &&
            bad.length === 0
            ? r
            : null;
        },
        `stored bars equal to the trade stream up to ${new Date(coveredTo).toISOString()}`,
        150_000,
      ).catch(async (e) => {
        const r = await verifyBars(nc, pool, 500);
        throw new Error(
          `${e.message}: 1m ${JSON.stringify(r.filter((x) => x.timeframe === '1m'))}; differing ${JSON.stringify(r.filter((x) => x.missing || x.different || x.extra))}`,
        );
      });
      expect(reports.filter((x) => x.timeframe === '1m').every((x) => x.missing === 0 && x.extra === 0)).toBe(
        true,
      );
    } finally {
      await pool.end();
    }

    step('7. exactly-once check');
    // Every actor is hosted exactly once across the live workers.
    const hosted: string[] = [];
    for (const w of ['w1', 'w2', 'w3', 'w4', 'w5'].filter((x) => ![victim, drained, second].includes(x))) {
      const reply = await nc.request(serviceSubjects.instance('worker', w, 'actors'), encodeJson({}), {
        timeout: 5000,
      });
      const list = decodeJson(reply.data);
      if (list.ok)
        hosted.push(
          ...(list.value as { id: string; status: string }[])
            .filter((a) => a.status === 'running')
            .map((a) => a.id),
        );
    }
    expect(hosted.sort()).toEqual([...(await allRunning('final')).keys()].sort());
    expect(new Set(hosted).size).toBe(ACTORS);

    // What `nats micro ls`, `nats consumer ls TRADES` and `nats kv ls` would show agrees.
    const live = ['w1', 'w2', 'w3', 'w4', 'w5'].filter((x) => ![victim, drained, second].includes(x));
    const view = await inspect(nc);
    const services = (name: string) => view.services.filter((s) => s.name === name);
    expect(services('tickmesh-supervisor')).toHaveLength(1);
    expect(services('tickmesh-gateway')).toHaveLength(1);
    expect(
      services('tickmesh-worker')
        .map((s) => s.metadata.instance)
        .sort(),
    ).toEqual(live);
    for (const s of view.services) {
      expect(s.metadata).toMatchObject({ role: expect.any(String), host: expect.any(String) });
      expect(s.endpoints.some((e) => e.endsWith('.status'))).toBe(true);
    }
    expect(view.consumers.TRADES?.length).toBe(5); // one durable per symbol actor
    expect(view.buckets['actor-assign']?.map((r) => r.key)).toHaveLength(ACTORS);
    expect(new Set(view.buckets['actor-assign']?.map((r) => (r.value as { worker: string }).worker))).toEqual(
      new Set(live),
    );
  });
});
