/**
 * LocalSupervisor: the actors of one process, supervised one-for-one (OTP style).
 * A supervisor is data: restart intensity/period and backoff, plus child specs. A crashing
 * child is restarted with exponential backoff; past its intensity (more than `intensity`
 * restarts within `periodMs`) it is marked failed and escalated to the parent, and stays
 * failed until an operator restarts it. Siblings are never touched.
 */

import type { Clock, TimerHandle } from '../../core/clock.ts';
import { ActorFailedError, DuplicateActorError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import type { ActorSpec } from '../../core/protocol/index.ts';
import type { BehaviorFactory } from './actor.ts';
import { ActorCell, type ExitOutcome, type HealthSink } from './cell.ts';

export type RestartType = 'permanent' | 'transient' | 'temporary';

export interface ChildSpec {
  spec: ActorSpec;
  restart: RestartType;
  shutdownMs: number;
}

export interface RestartPolicy {
  intensity: number;
  periodMs: number;
  backoffMs: number;
  maxBackoffMs: number;
}

export type SupervisorEvent =
  | { type: 'started' | 'stopped' | 'restarted'; id: string; sessionId: string; restarts: number }
  | { type: 'crashed' | 'failed'; id: string; sessionId: string; restarts: number; error: string };

export interface LocalSupervisorOptions {
  policy: RestartPolicy;
  factory: BehaviorFactory;
  clock: Clock;
  log: Logger;
  worker: string;
  heartbeatMs: number;
  health: HealthSink;
  /** Events for the parent (the worker forwards them to sys.actor.* and the cluster supervisor). */
  onEvent?: (event: SupervisorEvent) => void;
}

interface Child {
  childSpec: ChildSpec;
  cell: ActorCell;
  restartTimes: number[];
  pending: TimerHandle | null;
}

export class LocalSupervisor {
  private readonly children = new Map<string, Child>();
  private stopping = false;

  constructor(private readonly opts: LocalSupervisorOptions) {}

  has(id: string): boolean {
    return this.children.has(id);
  }

  get(id: string): ActorCell | undefined {
    return this.children.get(id)?.cell;
  }

  cells(): ActorCell[] {
    return [...this.children.values()].map((c) => c.cell);
  }

  startChild(childSpec: ChildSpec): ActorCell {
    const { id } = childSpec.spec;
    if (this.children.has(id)) throw new DuplicateActorError(id);
    const cell = new ActorCell(childSpec.spec, () => this.opts.factory(childSpec.spec), {
      clock: this.opts.clock,
      log: this.opts.log,
      worker: this.opts.worker,
      heartbeatMs: this.opts.heartbeatMs,
      health: this.opts.health,
      onExit: (c, outcome) => this.onExit(c, outcome),
    });
    this.children.set(id, { childSpec, cell, restartTimes: [], pending: null });
    cell.start();
    metrics.actorsRunning.inc({ kind: childSpec.spec.kind });
    this.emit({ type: 'started', id, sessionId: cell.sessionId, restarts: 0 });
    return cell;
  }

  async stopChild(id: string): Promise<void> {
    const child = this.children.get(id);
    if (!child) return;
    this.children.delete(id);
    if (child.pending) this.opts.clock.clearTimeout(child.pending);
    await child.cell.stop(child.childSpec.shutdownMs);
    metrics.actorsRunning.dec({ kind: child.childSpec.spec.kind });
    this.emit({ type: 'stopped', id, sessionId: child.cell.sessionId, restarts: child.cell.restarts });
  }

  /** Operator restart: clears the intensity history, so a failed actor gets a fresh start. */
  async restartChild(id: string): Promise<boolean> {
    const child = this.children.get(id);
    if (!child) return false;
    if (child.pending) this.opts.clock.clearTimeout(child.pending);
    child.pending = null;
    await child.cell.stop(child.childSpec.shutdownMs);
    child.restartTimes = [];
    child.cell.restarts += 1;
    child.cell.start();
    this.emit({ type: 'restarted', id, sessionId: child.cell.sessionId, restarts: child.cell.restarts });
    return true;
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.keys()].map((id) => this.stopChild(id)));
  }

  private onExit(cell: ActorCell, outcome: ExitOutcome): void {
    const child = this.children.get(cell.id);
    if (!child || child.cell !== cell || this.stopping) return;
    const { restart } = child.childSpec;
    const error = outcome.kind === 'crashed' ? outcome.error.message : 'exited';
    if (outcome.kind === 'crashed') {
      this.emit({ type: 'crashed', id: cell.id, sessionId: cell.sessionId, restarts: cell.restarts, error });
    }
    const shouldRestart = restart === 'permanent' || (restart === 'transient' && outcome.kind === 'crashed');
    if (!shouldRestart) {
      this.children.delete(cell.id);
      metrics.actorsRunning.dec({ kind: cell.spec.kind });
      return;
    }
    const { intensity, periodMs, backoffMs, maxBackoffMs } = this.opts.policy;
    const now = this.opts.clock.now();
    child.restartTimes = child.restartTimes.filter((t) => now - t < periodMs);
    if (child.restartTimes.length >= intensity) {
      cell.markFailed(`gave up after ${child.restartTimes.length} restarts in ${periodMs} ms: ${error}`);
      const cause = outcome.kind === 'crashed' ? outcome.error : undefined;
      this.opts.log.error(
        {
          actor: cell.id,
          restarts: cell.restarts,
          err: new ActorFailedError(cell.id, cell.restarts, { cause }),
        },
        'restart intensity exceeded; actor failed',
      );
      this.emit({ type: 'failed', id: cell.id, sessionId: cell.sessionId, restarts: cell.restarts, error });
      return;
    }
    child.restartTimes.push(now);
    const delay = Math.min(maxBackoffMs, backoffMs * 2 ** (child.restartTimes.length - 1));
    child.pending = this.opts.clock.setTimeout(() => {
      child.pending = null;
      if (this.children.get(cell.id) !== child) return;
      cell.restarts += 1;
      metrics.actorRestarts.inc({ kind: cell.spec.kind });
      cell.start();
      this.emit({ type: 'restarted', id: cell.id, sessionId: cell.sessionId, restarts: cell.restarts });
    }, delay);
  }

  private emit(event: SupervisorEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (e) {
      this.opts.log.warn({ err: e }, 'supervisor event handler failed');
    }
  }
}
