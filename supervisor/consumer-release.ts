/**
 * Releases the `TRADES` durables of symbols that are no longer active (deactivated, removed, or
 * whose exchange was disabled): a durable nobody reads keeps its state on the server forever.
 *
 * Rules, so that deleting never races a running actor and a crash midway is repaired:
 * - only durables named for a symbol actor (`sym_<ex>_<token>`) are considered;
 * - a durable of a desired symbol actor is kept;
 * - one whose actor is still assigned, or still has a fresh health record (it is stopping, or a
 *   worker has not seen the assignment go yet), is left for a later pass: deleting it under a
 *   running actor would end its consumer, and the restarted actor would create it again;
 * - anything else is deleted. "Already gone" counts as released, so passes are idempotent, and
 *   the leader runs them on every change of the desired set, after taking the lease (a leader
 *   that died between removing an assignment and deleting the durable), and periodically.
 */
import type { Topology } from '../core/nats.ts';
import { isNotFound } from '../core/nats.ts';
import { actorHealthSchema, decodeWith, STREAMS, symbolActorOfConsumer } from '../core/protocol/index.ts';

export interface ReleaseView {
  /** Actor ids of the desired set. */
  desired: ReadonlySet<string>;
  /** Whether the actor still has an assignment in KV `actor-assign`. */
  assigned: (actorId: string) => boolean;
  now: number;
  /** A health record older than this is a dead actor's (the bucket's TTL). */
  healthTtlMs: number;
  /** Called before each delete: throws when the caller may no longer act (lost lease). */
  beforeDelete?: () => void;
}

export interface ReleaseResult {
  /** Durables deleted by this pass. */
  released: string[];
  /** Durables of stopped symbols whose actor may still run: the next pass looks again. */
  waiting: string[];
}

async function stillRunning(topo: Topology, actorId: string, view: ReleaseView): Promise<boolean> {
  if (view.assigned(actorId)) return true;
  const entry = await topo.kv.health.get(actorId);
  if (entry?.operation !== 'PUT') return false;
  const rec = decodeWith(actorHealthSchema, entry.value);
  return rec.ok && view.now - rec.value.updatedAt < view.healthTtlMs;
}

export async function releaseConsumers(topo: Topology, view: ReleaseView): Promise<ReleaseResult> {
  const out: ReleaseResult = { released: [], waiting: [] };
  const names: string[] = [];
  for await (const info of topo.jsm.consumers.list(STREAMS.trades)) names.push(info.name);
  for (const name of names) {
    const actorId = symbolActorOfConsumer(name);
    if (actorId === null || view.desired.has(actorId)) continue;
    if (await stillRunning(topo, actorId, view)) {
      out.waiting.push(name);
      continue;
    }
    view.beforeDelete?.();
    try {
      await topo.jsm.consumers.delete(STREAMS.trades, name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    out.released.push(name);
  }
  return out;
}
