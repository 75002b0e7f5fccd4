/**
 * ActorCell: one running actor. Owns its status, session id, heartbeat into the health sink,
 * and reports how its behavior ended to its parent (it never restarts itself).
 */
import { randomUUID } from 'node:crypto';
import { type Clock, sleep, type TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { type ActorHealth, type ActorSpec, SCHEMA_VERSION } from '../../core/protocol/index.ts';
import type { ActorBehavior, ActorContext } from './actor.ts';
import { type ActorStatus, transition } from './lifecycle.ts';

export interface HealthSink {
  write(record: ActorHealth): Promise<void>;
  remove(id: string): Promise<void>;
}

export type ExitOutcome = { kind: 'exited' } | { kind: 'crashed'; error: Error };

export interface CellOptions {
  clock: Clock;
  log: Logger;
  worker: string;
  heartbeatMs: number;
  health: HealthSink;
  onExit: (cell: ActorCell, outcome: ExitOutcome) => void;
}

export class ActorCell {
  status: ActorStatus;
  sessionId = '';
  startedAt = 0;
  restarts = 0;
  private processed = 0;
  private lastEventAt: number | null = null;
  private detail: Record<string, unknown> = {};
  private abort: AbortController | null = null;
  private running: Promise<void> | null = null;
  private heartbeat: TimerHandle | null = null;

  constructor(
    readonly spec: ActorSpec,
    private readonly behavior: () => ActorBehavior,
    private readonly opts: CellOptions,
  ) {
    this.status = { name: 'stopped', since: opts.clock.now() };
  }

  get id(): string {
    return this.spec.id;
  }

  start(): void {
    const { clock, log } = this.opts;
    this.setStatus({ name: 'starting', since: clock.now() });
    this.sessionId = randomUUID();
    this.startedAt = clock.now();
    this.detail = {};
    const abort = new AbortController();
    this.abort = abort;
    const ctx: ActorContext = {
      id: this.id,
      sessionId: this.sessionId,
      spec: this.spec,
      signal: abort.signal,
      clock,
      log: log.child({ actor: this.id, session: this.sessionId }),
      markEvent: (count = 1) => {
        this.processed += count;
        this.lastEventAt = clock.now();
      },
      setDetail: (d) => Object.assign(this.detail, d),
      ready: () => {
        if (this.status.name === 'starting' && ctx.sessionId === this.sessionId) {
          this.setStatus({ name: 'running', since: clock.now() });
        }
      },
    };
    this.scheduleHeartbeat();
    let instance: ActorBehavior;
    try {
      instance = this.behavior();
    } catch (e) {
      this.running = Promise.resolve();
      queueMicrotask(() => this.finish(ctx.sessionId, { kind: 'crashed', error: asError(e) }));
      return;
    }
    this.running = instance.run(ctx).then(
      () => this.finish(ctx.sessionId, { kind: 'exited' }),
      (e) => this.finish(ctx.sessionId, { kind: 'crashed', error: asError(e) }),
    );
  }

  /** Asks the behavior to stop and waits up to `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.status.name === 'stopped') return;
    if (this.status.name === 'failed') {
      this.setStatus({ name: 'stopped', since: this.opts.clock.now() });
      this.clearHeartbeat();
      return;
    }
    this.setStatus({ name: 'stopping', since: this.opts.clock.now() });
    this.abort?.abort();
    const running = this.running;
    if (running) {
      const settled = new AbortController();
      await Promise.race([running, sleep(this.opts.clock, timeoutMs, settled.signal)]);
      settled.abort();
    }
    this.clearHeartbeat();
    if ((this.status as ActorStatus).name !== 'stopped')
      this.setStatus({ name: 'stopped', since: this.opts.clock.now() });
    await this.opts.health.remove(this.id).catch(() => {});
  }

  /** The parent gave up restarting: the cell stays visible as failed until an operator acts. */
  markFailed(error: string): void {
    const failed: ActorStatus = { name: 'failed', since: this.opts.clock.now(), error };
    // A crash already left the cell failed; giving up only replaces the reason.
    if (this.status.name === 'failed') {
      this.status = failed;
      void this.writeHealth();
    } else this.setStatus(failed);
    this.scheduleHeartbeat();
  }

  healthRecord(): ActorHealth {
    const { spec } = this;
    const rec: ActorHealth = {
      v: SCHEMA_VERSION,
      id: spec.id,
      kind: spec.kind,
      status: this.status.name,
      worker: this.opts.worker,
      sessionId: this.sessionId,
      startedAt: this.startedAt,
      lastEventAt: this.lastEventAt,
      processed: this.processed,
      restarts: this.restarts,
      updatedAt: this.opts.clock.now(),
    };
    if ('exchange' in spec) rec.exchange = spec.exchange;
    if ('symbol' in spec) rec.symbol = spec.symbol;
    if (this.status.name === 'failed') rec.error = this.status.error;
    if (Object.keys(this.detail).length > 0) rec.detail = { ...this.detail };
    return rec;
  }

  private finish(sessionId: string, outcome: ExitOutcome): void {
    if (sessionId !== this.sessionId) return;
    const stopping = this.status.name === 'stopping';
    if (outcome.kind === 'crashed') {
      this.opts.log.error({ actor: this.id, err: outcome.error }, 'actor crashed');
      if (!stopping)
        this.setStatus({ name: 'failed', since: this.opts.clock.now(), error: outcome.error.message });
    }
    if (stopping || outcome.kind === 'exited') {
      if (this.status.name !== 'stopped') this.setStatus({ name: 'stopped', since: this.opts.clock.now() });
      this.clearHeartbeat();
    }
    if (!stopping) this.opts.onExit(this, outcome);
  }

  private setStatus(next: ActorStatus): void {
    this.status = transition(this.status, next);
    void this.writeHealth();
  }

  private async writeHealth(): Promise<void> {
    try {
      await this.opts.health.write(this.healthRecord());
    } catch (e) {
      this.opts.log.warn({ actor: this.id, err: e }, 'health write failed');
    }
  }

  private scheduleHeartbeat(): void {
    this.clearHeartbeat();
    const beat = () => {
      void this.writeHealth();
      this.heartbeat = this.opts.clock.setTimeout(beat, this.opts.heartbeatMs);
    };
    this.heartbeat = this.opts.clock.setTimeout(beat, this.opts.heartbeatMs);
  }

  private clearHeartbeat(): void {
    if (this.heartbeat) this.opts.clock.clearTimeout(this.heartbeat);
    this.heartbeat = null;
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
