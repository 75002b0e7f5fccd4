/**
 * Cluster supervisor: the leader turns the desired actor set (Postgres) and the live workers
 * (KV `workers`, swept by timestamp since NATS 2.9 sends no event when a TTL expires a key)
 * into assignments in KV `actor-assign`. It reacts to symbol changes through LISTEN/NOTIFY and
 * a poll, and only writes while it holds the lease. It also deletes the `TRADES` durables of
 * symbols that are no longer active, once their actors have stopped (consumer-release.ts).
 */

import { unwatchFile, watchFile } from 'node:fs';
import type { KvWatchEntry } from '@nats-io/kv';
import type { Service } from '@nats-io/services';
import type pg from 'pg';
import { type Clock, every, type Repeating } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import { BadArgumentError, NotFoundError, RemoteError } from '../core/errors.ts';
import { loadExchangesFile, syncExchanges } from '../core/exchanges-config.ts';
import type { Logger } from '../core/log.ts';
import { registerMicroService } from '../core/micro.ts';
import { liveWorkers, type Topology } from '../core/nats.ts';
import {
  type ActorSpec,
  type Assignment,
  assignmentSchema,
  decodeJson,
  decodeWith,
  encodeJson,
  SCHEMA_VERSION,
  SERVICES,
  serviceSubjects,
} from '../core/protocol/index.ts';
import { retryFor } from '../core/retry.ts';
import { planAssignments } from './assignment-plan.ts';
import { releaseConsumers } from './consumer-release.ts';
import { loadDesired, seedSimulator } from './desired.ts';
import { LeaderLease } from './leader.ts';

export interface SupervisorOptions {
  id: string;
  topo: Topology;
  cfg: Config;
  pool: Pool;
  clock: Clock;
  log: Logger;
}

const DESIRED_REFRESH_MS = 2000;
/** A pass over TRADES' durables runs on every change, and at least this often regardless. */
const RELEASE_SWEEP_MS = 30_000;

export class ClusterSupervisor {
  readonly lease: LeaderLease;
  private readonly assignments = new Map<string, Assignment>();
  /** Last known KV revision per assignment key: writes are compare-and-set against it. */
  private readonly revisions = new Map<string, number>();
  private desired: ActorSpec[] = [];
  private desiredAt = Number.NEGATIVE_INFINITY;
  private desiredDirty = true;
  private timer: Repeating | null = null;
  /** Highest foreign epoch this term has already proven its lease against (see reconcile). */
  private confirmedEpoch = 0;
  private watcher: { stop(): void } | null = null;
  /** The connection LISTENing for symbol changes, and how to give it back (once). */
  private listener: { client: pg.PoolClient; release(destroy: boolean): void } | null = null;
  private service: Service | null = null;
  private running = false;
  private reconciling: Promise<void> | null = null;
  private liveWorkers: string[] = [];
  /** Whether the desired set has been read once (before that, every durable looks unwanted). */
  private desiredLoaded = false;
  private releaseDue = true;
  private releasedAt = Number.NEGATIVE_INFINITY;
  /** Stored symbols that get no actor (logged once each). */
  private readonly unusable = new Set<string>();

  constructor(private readonly opts: SupervisorOptions) {
    this.lease = new LeaderLease(
      opts.topo.kv.leader,
      opts.id,
      opts.cfg.supervisor.leaseTtlMs,
      opts.clock,
      opts.log,
      (l) => {
        this.confirmedEpoch = 0;
        if (l) {
          this.releaseDue = true;
          void this.reconcile();
        }
      },
    );
  }

  async start(): Promise<void> {
    this.running = true;
    if (await seedSimulator(this.opts.pool, this.opts.cfg))
      this.opts.log.info('seeded the simulator exchange and symbols');
    await this.watchExchangesFile();
    const watcher = await this.opts.topo.kv.assign.watch({ key: '>' });
    this.watcher = watcher;
    void (async () => {
      for await (const e of watcher) this.onAssignment(e);
    })().catch((err) => this.opts.log.error({ err }, 'assignment watch ended'));
    await this.listen();
    this.lease.start();
    this.timer = every(this.opts.clock, this.opts.cfg.supervisor.pollMs, () => void this.reconcile());
    this.service = await registerMicroService(this.opts.topo.nc, {
      name: SERVICES.supervisor,
      role: 'supervisor',
      instance: this.opts.id,
      description: 'tickmesh supervisor: desired actors, placement, leader lease',
      log: this.opts.log,
      endpoints: {
        status: () => this.status(),
        actors: () =>
          [...this.assignments.entries()].map(([id, a]) => ({ id, worker: a.worker, kind: a.spec.kind })),
        // `nats request tickmesh.supervisor.restart '{"id":…}'` (operator credential only).
        restart: (req) => this.restartActor(req),
      },
    });
  }

  /**
   * Applies the exchanges file now (an invalid file stops the start with a clear error) and
   * again whenever it changes (an invalid edit is logged and the last good version stays).
   * Polling `stat` rather than inotify: it survives editors that replace the file and
   * Kubernetes ConfigMap symlink swaps.
   */
  private async watchExchangesFile(): Promise<void> {
    const path = this.opts.cfg.exchangesFile;
    if (!path) return;
    const apply = async (file = loadExchangesFile(path)) => {
      const changed = await syncExchanges(this.opts.pool, file);
      if (changed.length) {
        this.opts.log.info({ path, changed }, 'exchanges file applied');
        this.desiredDirty = true;
      }
    };
    const first = loadExchangesFile(path); // an invalid file fails the start right here
    await retryFor(60_000).execute(() => apply(first));
    const onChange = () =>
      void Promise.resolve()
        .then(() => apply())
        .catch((err) =>
          this.opts.log.error({ err: (err as Error).message, path }, 'exchanges file not applied'),
        );
    watchFile(path, { interval: 2000, persistent: false }, onChange);
    this.unwatchFile = () => unwatchFile(path, onChange);
  }

  private unwatchFile: (() => void) | null = null;

  status() {
    return {
      supervisor: this.opts.id,
      leader: this.lease.isLeader,
      epoch: this.lease.epoch,
      desired: this.desired.length,
      assigned: this.assignments.size,
      workers: this.liveWorkers,
    };
  }

  /** Operator restart of one actor (e.g. a failed one): asks the worker that hosts it. */
  async restartActor(req: unknown): Promise<unknown> {
    const id = (req as { id?: unknown })?.id;
    if (typeof id !== 'string') throw new BadArgumentError('id', 'restart needs {"id": "<actor id>"}');
    const a = this.assignments.get(id);
    if (!a) throw new NotFoundError(`actor ${id} is not assigned to any worker`);
    const subject = serviceSubjects.instance('worker', a.worker, 'restart');
    const reply = await this.opts.topo.nc.request(subject, encodeJson({ id }), { timeout: 10_000 });
    const parsed = decodeJson(reply.data);
    if (!parsed.ok) throw new RemoteError(`worker ${a.worker}`, parsed.error);
    return parsed.value;
  }

  async stop(): Promise<void> {
    this.unwatchFile?.();
    this.running = false;
    this.timer?.stop();
    this.watcher?.stop();
    await this.service?.stop().catch(() => {});
    if (this.listener) {
      const { client, release } = this.listener;
      client.removeAllListeners('notification');
      await client.query('UNLISTEN *').catch(() => {});
      release(false);
    }
    await this.lease.stop();
  }

  private async listen(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.opts.pool.connect();
    } catch (err) {
      this.opts.log.warn({ err }, 'LISTEN failed; relying on polling');
      return;
    }
    // Released exactly once, whichever comes first: stop(), a connection error (also one that
    // arrives after stop(), e.g. when the database is dropped), or a failed LISTEN.
    let released = false;
    const release = (destroy: boolean) => {
      if (released) return;
      released = true;
      client.removeAllListeners('notification');
      client.removeListener('error', onError);
      if (this.listener?.client === client) this.listener = null;
      client.release(destroy);
    };
    // The connection died with the database; reconcile() listens again once it is back.
    const onError = () => release(true);
    client.on('error', onError);
    client.on('notification', () => {
      this.desiredDirty = true;
      void this.reconcile();
    });
    try {
      await client.query('LISTEN tickmesh_symbols');
      this.listener = { client, release };
    } catch (err) {
      release(true);
      this.opts.log.warn({ err }, 'LISTEN failed; relying on polling');
    }
  }

  private onAssignment(e: KvWatchEntry): void {
    // Our own writes update the cache first; an older entry still in flight must not undo that.
    if (e.revision <= (this.revisions.get(e.key) ?? 0)) return;
    this.revisions.set(e.key, e.revision);
    if (e.operation !== 'PUT') {
      this.assignments.delete(e.key);
      return;
    }
    const checked = decodeWith(assignmentSchema, e.value);
    if (checked.ok) this.assignments.set(e.key, checked.value);
  }

  private async readWorkers(): Promise<string[]> {
    const live = await liveWorkers(this.opts.topo, this.opts.clock.now(), this.opts.cfg.health.ttlMs);
    return live.map((w) => w.id);
  }

  /** One pass of placement; a call while one runs joins it. Writes only while leader. */
  reconcile(): Promise<void> {
    if (!this.running || !this.lease.isLeader) return Promise.resolve();
    this.reconciling ??= this.reconcileOnce()
      .then(() => this.releaseOnce())
      .finally(() => {
        this.reconciling = null;
      });
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    try {
      const now = this.opts.clock.now();
      if (this.desiredDirty || now - this.desiredAt >= DESIRED_REFRESH_MS) {
        try {
          const before = this.desired.map((s) => s.id).join('\n');
          this.desired = await loadDesired(this.opts.pool, this.opts.cfg, (exchange, symbol, reason) => {
            if (this.unusable.has(`${exchange}\n${symbol}`)) return;
            this.unusable.add(`${exchange}\n${symbol}`);
            this.opts.log.warn({ exchange, reason }, 'a stored symbol cannot run; deactivate or remove it');
          });
          if (this.desired.map((s) => s.id).join('\n') !== before) this.releaseDue = true;
          this.desiredLoaded = true;
          this.desiredDirty = false;
          this.desiredAt = now;
          if (!this.listener) await this.listen();
        } catch (err) {
          // PostgreSQL down: keep placing the last known desired set (failover must go on).
          this.opts.log.warn(
            { err: (err as Error).message },
            'cannot read the desired actors; using the last known set',
          );
          this.desiredAt = now;
        }
      }
      if (this.desired.length === 0) return;
      this.liveWorkers = await this.readWorkers();
      const plan = planAssignments(this.desired, this.assignments, this.liveWorkers, this.lease.epoch);
      if (plan.remove.length + plan.assign.length === 0) return;
      // An epoch above ours: a newer leader wrote while we were paused, unless it is left over
      // from before the leader bucket was reset. A renewal now (compare-and-set) tells which.
      if (plan.newerEpoch !== null && plan.newerEpoch > this.confirmedEpoch) {
        if (!(await this.lease.confirm())) {
          this.opts.log.warn({ epoch: plan.newerEpoch }, 'a newer leader placed actors; standing down');
          return;
        }
        this.confirmedEpoch = plan.newerEpoch;
      }
      const kv = this.opts.topo.kv.assign;
      for (const id of plan.remove) {
        this.lease.assertHeld();
        await kv.delete(id, { previousSeq: this.revisions.get(id) });
        this.assignments.delete(id);
        this.opts.log.info({ actor: id }, 'actor no longer desired');
      }
      for (const { id, worker, spec, from } of plan.assign) {
        this.lease.assertHeld();
        const a: Assignment = {
          v: SCHEMA_VERSION,
          worker,
          spec,
          epoch: this.lease.epoch,
          assignedAt: this.opts.clock.now(),
        };
        // Compare-and-set: a stale leader whose view is behind a newer leader's writes fails here.
        const known = from !== undefined ? this.revisions.get(id) : undefined;
        const rev = known ? await kv.update(id, encodeJson(a), known) : await kv.create(id, encodeJson(a));
        this.revisions.set(id, rev);
        this.assignments.set(id, a);
        this.opts.log.info({ actor: id, worker, from }, 'actor assigned');
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'reconcile failed');
    }
  }

  /** Deletes the durables of symbols no longer desired, when a pass is due (consumer-release.ts). */
  private async releaseOnce(): Promise<void> {
    const now = this.opts.clock.now();
    if (!this.desiredLoaded || !this.lease.isLeader) return;
    if (!this.releaseDue && now - this.releasedAt < RELEASE_SWEEP_MS) return;
    try {
      const { released, waiting } = await releaseConsumers(this.opts.topo, {
        desired: new Set(this.desired.map((s) => s.id)),
        assigned: (id) => this.assignments.has(id),
        now,
        healthTtlMs: this.opts.cfg.health.ttlMs,
        beforeDelete: () => this.lease.assertHeld(),
      });
      this.releasedAt = now;
      this.releaseDue = waiting.length > 0;
      for (const consumer of released)
        this.opts.log.info({ consumer }, 'released the durable of an inactive symbol');
    } catch (err) {
      this.opts.log.warn({ err }, 'releasing durables failed');
    }
  }
}
