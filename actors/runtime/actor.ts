/**
 * What an actor kind implements, and what the runtime hands it.
 * A behavior's `run` resolves when it has stopped after `signal` aborted, and rejects when it
 * crashes; the runtime (ActorCell) owns status, heartbeat and restarts.
 */
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { ActorSpec } from '../../core/protocol/index.ts';

export interface ActorContext {
  readonly id: string;
  /** Changes on every (re)start. */
  readonly sessionId: string;
  readonly spec: ActorSpec;
  /** Aborted when the actor must stop. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly log: Logger;
  /** Records processed work (drives `processed` and `lastEventAt` in the health record). */
  markEvent(count?: number): void;
  /** Extra health fields (lag, circuit state, …), merged into the health record's `detail`. */
  setDetail(detail: Record<string, unknown>): void;
  /** The actor has finished starting (it is `starting` until then). */
  ready(): void;
}

export interface ActorBehavior {
  run(ctx: ActorContext): Promise<void>;
}

export type BehaviorFactory = (spec: ActorSpec) => ActorBehavior;
