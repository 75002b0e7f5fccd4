/** Actor status as a discriminated union with an explicit transition table. */
import { IllegalTransitionError } from '../../core/errors.ts';
import type { ActorStatusName } from '../../core/protocol/index.ts';

export type ActorStatus =
  | { name: 'starting'; since: number }
  | { name: 'running'; since: number }
  | { name: 'stopping'; since: number }
  | { name: 'stopped'; since: number }
  | { name: 'failed'; since: number; error: string };

const ALLOWED: Readonly<Record<ActorStatusName, readonly ActorStatusName[]>> = {
  starting: ['running', 'stopping', 'failed', 'stopped'],
  running: ['stopping', 'failed', 'stopped'],
  stopping: ['stopped', 'failed'],
  stopped: ['starting'],
  failed: ['starting', 'stopped'],
};

export function canTransition(from: ActorStatusName, to: ActorStatusName): boolean {
  return ALLOWED[from].includes(to);
}

export function transition(from: ActorStatus, to: ActorStatus): ActorStatus {
  if (!canTransition(from.name, to.name)) throw new IllegalTransitionError(from.name, to.name);
  return to;
}
