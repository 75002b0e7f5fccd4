/**
 * Where one symbol's feed stands, as one value: following the stream, waiting for the stream to
 * prove itself after a reconnect, or being repaired over REST, each with what the stream's
 * silence means so far. `nextPhase` is the whole transition table; the feed applies events and
 * starts a repair task whenever a phase turns `repairing`.
 */

export type RepairReason = 'connect' | 'verify' | 'stale' | 'frame' | 'overflow';

/** The per-symbol state reported in health. */
export type SymbolFeedState = 'streaming' | 'repairing' | 'stale' | 'polling' | 'backoff';

/**
 * - fresh: a live trade came within its stale threshold (or the watchdog has not looked yet);
 * - silent: the watchdog flagged it (no live trade for the threshold);
 * - missing: REST found trades the stream never brought (until a live trade comes);
 * - silent-missing: both.
 */
export type Freshness = 'fresh' | 'silent' | 'missing' | 'silent-missing';

export type SymbolPhase =
  /** Live trades are handed straight on. */
  | { kind: 'following'; freshness: Freshness }
  /**
   * A reconnect repair saw no live trade, so the stream has not proven it started where REST
   * stopped: live trades wait, and the first one starts a verifying repair.
   */
  | { kind: 'unproven'; freshness: Freshness }
  /** REST pages the gap; live trades wait in the buffer. `again`: a repair asked for meanwhile. */
  | {
      kind: 'repairing';
      freshness: Freshness;
      reason: RepairReason;
      again: RepairReason | undefined;
      /** The stream is still unproven when this repair ends. */
      unproven: boolean;
    };

export type PhaseEvent =
  /** A repair is wanted: starts one, or re-arms the running one. */
  | { type: 'repair'; reason: RepairReason }
  /** The running repair's pass needed the stream's proof and saw no live trade. */
  | { type: 'unproven' }
  /** The running repair moves on to the reason it was re-armed with (if any). */
  | { type: 'repair-next' }
  | { type: 'repair-done' }
  /** A valid live trade arrived. */
  | { type: 'live' }
  /** The watchdog: no live trade for the stale threshold. */
  | { type: 'silent' }
  /** The watchdog: within the threshold again; or a new connection restarts the wait. */
  | { type: 'heard' }
  /** REST has trades the stream never brought. */
  | { type: 'missing' }
  /** REST confirms a quiet market: nothing was missed. */
  | { type: 'quiet' };

export const INITIAL_PHASE: SymbolPhase = Object.freeze({ kind: 'following', freshness: 'fresh' });

export function nextPhase(p: SymbolPhase, e: PhaseEvent): SymbolPhase {
  switch (e.type) {
    case 'repair':
      if (p.kind === 'repairing') return { ...p, again: p.again ?? e.reason };
      return {
        kind: 'repairing',
        freshness: p.freshness,
        reason: e.reason,
        again: undefined,
        unproven: p.kind === 'unproven',
      };
    case 'unproven':
      return p.kind === 'repairing' ? { ...p, unproven: true } : p;
    case 'repair-next':
      if (p.kind !== 'repairing' || p.again === undefined) return p;
      return { ...p, reason: p.again, again: undefined };
    case 'repair-done':
      if (p.kind !== 'repairing') return p;
      return { kind: p.unproven ? 'unproven' : 'following', freshness: p.freshness };
    case 'live':
      // The first live trade after an unproven reconnect starts the verifying repair.
      if (p.kind === 'unproven')
        return { kind: 'repairing', freshness: 'fresh', reason: 'verify', again: undefined, unproven: false };
      return withFreshness(p, 'fresh');
    case 'silent':
      return withFreshness(
        p,
        p.freshness === 'missing' || p.freshness === 'silent-missing' ? 'silent-missing' : 'silent',
      );
    case 'heard':
      return withFreshness(
        p,
        p.freshness === 'silent-missing' || p.freshness === 'missing' ? 'missing' : 'fresh',
      );
    case 'missing':
      return withFreshness(
        p,
        p.freshness === 'silent' || p.freshness === 'silent-missing' ? 'silent-missing' : 'missing',
      );
    case 'quiet':
      return withFreshness(p, 'fresh');
  }
}

function withFreshness(p: SymbolPhase, freshness: Freshness): SymbolPhase {
  return p.freshness === freshness ? p : { ...p, freshness };
}

/** Flagged by the watchdog (it does not flag again until the symbol is heard). */
export const isFlagged = (p: SymbolPhase): boolean =>
  p.freshness === 'silent' || p.freshness === 'silent-missing';

/** Stale as health reports it: flagged, or REST showed the stream missing trades. */
export const isStale = (p: SymbolPhase): boolean => p.freshness !== 'fresh';

/** Live trades wait in the buffer (a repair runs, or the stream is unproven). */
export const buffersLive = (p: SymbolPhase): boolean => p.kind !== 'following';

/**
 * The state health reports. `blocked`: REST may not be asked now (circuit open or Retry-After
 * pending), so repairs and polls wait, though the stream itself may still flow.
 */
export function symbolFeedState(
  p: SymbolPhase,
  feed: { connected: boolean; streaming: boolean; blocked: boolean },
): SymbolFeedState {
  if (!feed.connected) return 'backoff';
  if (!feed.streaming) return feed.blocked ? 'backoff' : isFlagged(p) ? 'stale' : 'polling';
  if (p.kind === 'repairing') return feed.blocked ? 'backoff' : 'repairing';
  return isStale(p) ? 'stale' : 'streaming';
}
