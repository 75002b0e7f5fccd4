/**
 * Worker: hosts the actors the supervisor leader assigned to it (KV `actor-assign`).
 * It heartbeats into KV `workers`, watches its assignments (and re-reads them periodically,
 * since a watch can miss nothing but a reconnect can delay it), and runs the actors under a
 * LocalSupervisor. Actor events go to `sys.actor.<event>.<id>`.
 */

import { hostname } from 'node:os';
import type { KvWatchEntry } from '@nats-io/kv';
import type { Service } from '@nats-io/services';
import { type Clock, every, type Repeating, sleep } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import { BadArgumentError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { registerMicroService } from '../core/micro.ts';
import { listKeys, liveWorkers, type Topology } from '../core/nats.ts';
import {
  type ActorSpec,
  assignmentSchema,
  BUCKETS,
  decodeWith,
  encodeJson,
  SCHEMA_VERSION,
  SERVICES,
  subjects,
} from '../core/protocol/index.ts';
import { AssignmentView, type ListedAssignment } from './assignment-view.ts';
import { behaviorFactory, type ExchangeAdapters } from './factory.ts';
import { KvHealthSink } from './runtime/kv-health.ts';
import { LocalSupervisor, type SupervisorEvent } from './runtime/local-supervisor.ts';

export interface WorkerOptions {
  id: string;
  topo: Topology;
  cfg: Config;
  pool: Pool;
  clock: Clock;
  log: Logger;
  /** Exchange clients for tests (fakes); production leaves it out. */
  adapters?: ExchangeAdapters;
  /**
   * A connection of its own per kind of actor, each as that kind's NATS user, so the server
   * enforces what each kind may publish (core/nats-permissions.ts). A kind without one uses `topo`.
   */
  actorTopos?: Partial<Record<ActorSpec['kind'], Topology>>;
}

const SHUTDOWN_MS = 10_000;
/** How often the worker re-reads every assignment (see resyncAll). */
export const RESYNC_MS = 3000;
/** How long a draining worker waits for its actors to move before it stops them anyway. */
export const DRAIN_TIMEOUT_MS = 20_000;

export class Worker {
  readonly id: string;
  private readonly sup: LocalSupervisor;
  private readonly view = new AssignmentView();
  private readonly startedAt: number;
  private heartbeat: Repeating | null = null;
  private resync: Repeating | null = null;
  private watcher: (AsyncIterable<KvWatchEntry> & { stop(): void }) | null = null;
  private service: Service | null = null;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private draining = false;
  /** While draining with actors left to hand over: when it stops waiting for that. */
  private handoverDeadline: number | null = null;
  private onIdle: (() => void) | null = null;

  constructor(private readonly opts: WorkerOptions) {
    this.id = opts.id;
    this.startedAt = opts.clock.now();
    this.sup = new LocalSupervisor({
      policy: opts.cfg.supervisor.restart,
      factory: (spec) =>
        behaviorFactory({
          topo: opts.actorTopos?.[spec.kind] ?? opts.topo,
          cfg: opts.cfg,
          pool: opts.pool,
          adapters: opts.adapters,
        })(spec),
      clock: opts.clock,
      log: opts.log,
      worker: opts.id,
      heartbeatMs: opts.cfg.health.heartbeatMs,
      health: new KvHealthSink(opts.topo.kv.health),
      onEvent: (e) => this.publishEvent(e),
    });
  }

  async start(): Promise<void> {
    const { clock } = this.opts;
    await this.beat();
    this.heartbeat = every(clock, this.opts.cfg.health.heartbeatMs, () => void this.beat());
    const watcher = await this.opts.topo.kv.assign.watch({ key: '>' });
    this.watcher = watcher;
    void (async () => {
      for await (const e of watcher) this.onEntry(e);
    })().catch((err) => this.opts.log.error({ err }, 'assignment watch ended'));
    this.resync = every(clock, RESYNC_MS, () => void this.resyncAll());
    this.service = await registerMicroService(this.opts.topo.nc, {
      name: SERVICES.worker,
      role: 'worker',
      instance: this.id,
      description: 'tickmesh worker: hosts exchange, symbol and writer actors',
      log: this.opts.log,
      endpoints: {
        status: () => this.status(),
        actors: () => this.sup.cells().map((c) => c.healthRecord()),
        restart: async (req) => {
          const id = (req as { id?: unknown }).id;
          if (typeof id !== 'string') throw new BadArgumentError('id', 'restart needs {"id": "<actor id>"}');
          return { id, worker: this.id, restarted: await this.sup.restartChild(id) };
        },
        drain: async () => {
          void this.drain();
          return { worker: this.id, draining: true, actors: this.actorIds().length };
        },
      },
    });
    this.opts.log.info({ worker: this.id }, 'worker started');
  }

  status() {
    const cells = this.sup.cells();
    return {
      worker: this.id,
      host: hostname(),
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      actors: cells.length,
      draining: this.draining,
      handoverDeadline: this.handoverDeadline,
      byStatus: cells.reduce<Record<string, number>>((acc, c) => {
        acc[c.status.name] = (acc[c.status.name] ?? 0) + 1;
        return acc;
      }, {}),
    };
  }

  actorIds(): string[] {
    return this.sup.cells().map((c) => c.id);
  }

  /**
   * Hands this worker's actors over before it goes: marks itself draining (the supervisor stops
   * placing actors here and moves the existing ones), then waits until they have moved. With no
   * other live worker there is nowhere to move to, so it returns at once.
   */
  async drain(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    const { clock } = this.opts;
    const deadline = clock.now() + timeoutMs;
    this.draining = true;
    await this.beat();
    if ((await this.otherLiveWorkers()) === 0 || this.actorIds().length === 0) return;
    this.opts.log.info({ worker: this.id, actors: this.actorIds().length }, 'draining: handing actors over');
    const idle = new AbortController();
    this.onIdle = () => idle.abort();
    this.handoverDeadline = deadline;
    await sleep(clock, deadline - clock.now(), idle.signal);
    this.handoverDeadline = null;
    this.onIdle = null;
  }

  private async otherLiveWorkers(): Promise<number> {
    const { topo, clock, cfg } = this.opts;
    const live = await liveWorkers(topo, clock.now(), cfg.health.ttlMs).catch(() => []);
    return live.filter((w) => w.id !== this.id).length;
  }

  async stop(opts: { drain?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    if (opts.drain) await this.drain();
    this.stopped = true;
    this.heartbeat?.stop();
    this.resync?.stop();
    this.watcher?.stop();
    await this.chain;
    await this.sup.stopAll();
    await this.service?.stop().catch(() => {});
    await this.opts.topo.kv.workers.delete(this.id).catch(() => {});
    this.opts.log.info({ worker: this.id }, 'worker stopped');
  }

  private async beat(): Promise<void> {
    const rec = {
      v: SCHEMA_VERSION,
      id: this.id,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: this.opts.clock.now(),
      draining: this.draining,
    };
    await this.opts.topo.kv.workers.put(this.id, encodeJson(rec)).catch((err) => {
      this.opts.log.warn({ err }, 'worker heartbeat failed');
    });
  }

  private onEntry(e: KvWatchEntry): void {
    let applied: boolean;
    if (e.operation !== 'PUT') applied = this.view.applyEntry(e.key, e.revision, null);
    else {
      const checked = decodeWith(assignmentSchema, e.value);
      if (!checked.ok) {
        this.view.skipEntry(e.key, e.revision);
        this.opts.log.warn({ key: e.key, error: checked.error }, 'ignoring malformed assignment');
        return;
      }
      applied = this.view.applyEntry(e.key, e.revision, checked.value);
    }
    if (applied) this.enqueue(() => this.reconcile(e.key));
  }

  /**
   * Re-reads every assignment, values included, in case the watch lagged or missed an entry.
   * Merged by KV revision, so a listing older than what the watch delivered never wins.
   */
  private async resyncAll(): Promise<void> {
    const kv = this.opts.topo.kv.assign;
    const fresh = new Map<string, ListedAssignment>();
    let newest = 0;
    try {
      for (const k of await listKeys(this.opts.topo.jsm, BUCKETS.actorAssign)) {
        const e = await kv.get(k);
        if (e?.operation !== 'PUT') continue;
        newest = Math.max(newest, e.revision);
        const checked = decodeWith(assignmentSchema, e.value);
        if (checked.ok) fresh.set(k, { assignment: checked.value, revision: e.revision });
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'assignment resync failed');
      return;
    }
    for (const id of this.view.applyListing(fresh, newest, this.actorIds()))
      this.enqueue(() => this.reconcile(id));
  }

  /** Serialises start/stop work so an actor is never started twice concurrently. */
  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain.then(task).catch((err) => this.opts.log.error({ err }, 'reconcile failed'));
  }

  private async reconcile(id: string): Promise<void> {
    if (this.stopped) return;
    const a = this.view.get(id);
    const mine = a && a.worker === this.id ? a : null;
    const cell = this.sup.get(id);
    if (!mine) {
      if (cell) {
        await this.sup.stopChild(id);
        if (this.sup.cells().length === 0) this.onIdle?.();
      }
      return;
    }
    if (cell && JSON.stringify(cell.spec) === JSON.stringify(mine.spec)) return;
    if (cell) await this.sup.stopChild(id);
    this.sup.startChild({ spec: mine.spec, restart: 'permanent', shutdownMs: SHUTDOWN_MS });
  }

  private publishEvent(e: SupervisorEvent): void {
    const event = {
      v: SCHEMA_VERSION,
      id: e.id,
      event: e.type,
      sessionId: e.sessionId,
      worker: this.id,
      at: this.opts.clock.now(),
      restarts: e.restarts,
      ...('error' in e ? { error: e.error } : {}),
    };
    this.opts.topo.nc.publish(subjects.actorEvent(e.type, e.id), encodeJson(event));
  }
}
