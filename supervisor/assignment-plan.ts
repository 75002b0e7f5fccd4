/**
 * What the leader writes in one reconcile: assignments of actors no longer desired go, and
 * every desired actor gets the worker `place` picks (written only when that or its spec
 * changed). It also reports the newest epoch above the leader's own, the trace of a newer
 * leader: a leader that sees one must prove its lease before it overwrites anything.
 */
import type { ActorSpec, Assignment } from '../core/protocol/index.ts';
import { place } from './placement.ts';

export interface AssignmentPlan {
  /** Assigned actors that are no longer desired. */
  remove: string[];
  /** Actors to assign: new ones, moved ones and ones whose spec changed. */
  assign: { id: string; worker: string; spec: ActorSpec; from?: string }[];
  /** The highest epoch above `epoch` among the current assignments, else null. */
  newerEpoch: number | null;
}

export function planAssignments(
  desired: readonly ActorSpec[],
  assignments: ReadonlyMap<string, Assignment>,
  workers: readonly string[],
  epoch: number,
): AssignmentPlan {
  const desiredById = new Map(desired.map((s) => [s.id, s]));
  let newerEpoch: number | null = null;
  for (const a of assignments.values())
    if (a.epoch > epoch && (newerEpoch === null || a.epoch > newerEpoch)) newerEpoch = a.epoch;
  const remove = [...assignments.keys()].filter((id) => !desiredById.has(id));
  const current = new Map([...assignments].map(([id, a]) => [id, a.worker]));
  const assign: AssignmentPlan['assign'] = [];
  for (const [id, worker] of place([...desiredById.keys()], workers, current)) {
    const spec = desiredById.get(id)!;
    const cur = assignments.get(id);
    if (cur && cur.worker === worker && JSON.stringify(cur.spec) === JSON.stringify(spec)) continue;
    assign.push(cur ? { id, worker, spec, from: cur.worker } : { id, worker, spec });
  }
  return { remove, assign, newerEpoch };
}
