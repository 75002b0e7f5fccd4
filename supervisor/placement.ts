/**
 * Placement of actors on workers: balanced (every worker gets ⌊n/w⌋ or ⌈n/w⌉ actors) and
 * stable (an actor stays where it is while that keeps the balance; otherwise it goes to its
 * highest rendezvous-hash worker with room, so few actors move when workers come and go).
 */
import { createHash } from 'node:crypto';
import { InvariantError } from '../core/errors.ts';

function score(actorId: string, worker: string): number {
  return createHash('sha1').update(`${actorId}\u0000${worker}`).digest().readUInt32BE(0);
}

/** Workers ranked by rendezvous (highest random weight) hashing for one actor. */
export function rendezvousOrder(actorId: string, workers: readonly string[]): string[] {
  return [...workers].sort((a, b) => score(actorId, b) - score(actorId, a) || (a < b ? -1 : 1));
}

export function place(
  actorIds: readonly string[],
  workers: readonly string[],
  current: ReadonlyMap<string, string>,
): Map<string, string> {
  const plan = new Map<string, string>();
  // Duplicates would break the capacity arithmetic below (a KV key listing can repeat a key).
  workers = [...new Set(workers)];
  if (workers.length === 0) return plan;
  const ids = [...new Set(actorIds)].sort();
  const q = Math.floor(ids.length / workers.length);
  let extras = ids.length % workers.length;
  const count = new Map(workers.map((w) => [w, 0]));
  const alive = new Set(workers);
  // Pass 1: keep current placements up to the floor share.
  const rest: string[] = [];
  for (const id of ids) {
    const w = current.get(id);
    if (w && alive.has(w) && count.get(w)! < q) {
      plan.set(id, w);
      count.set(w, count.get(w)! + 1);
    } else rest.push(id);
  }
  // Pass 2: the rest, preferring the current worker for an extra slot, then rendezvous order.
  const take = (id: string, w: string) => {
    plan.set(id, w);
    count.set(w, count.get(w)! + 1);
  };
  for (const id of rest) {
    const w = current.get(id);
    if (w && alive.has(w) && count.get(w)! === q && extras > 0) {
      extras--;
      take(id, w);
      continue;
    }
    const order = rendezvousOrder(id, workers);
    const under = order.find((x) => count.get(x)! < q);
    if (under) {
      take(id, under);
      continue;
    }
    const extra = order.find((x) => count.get(x)! === q);
    if (extra === undefined || extras === 0)
      throw new InvariantError(`placement of ${id}: no worker below or at quota`);
    extras--;
    take(id, extra);
  }
  return plan;
}
