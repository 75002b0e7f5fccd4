/**
 * Per-socket outbound queues of the graphql-ws server. Frames are queued and written in one
 * corked batch per socket per event-loop turn (one writev instead of one per message). Forming
 * updates are conflated per subscription (a newer one replaces the queued one, latest wins);
 * closed bars, alert firings and control messages are never dropped. A socket's unsent bytes
 * (what the kernel would not take, ws.bufferedAmount, plus this queue) are bounded: above
 * `maxBufferedBytes` nothing more is written to it and it is watched; if it stays above for
 * `slowGraceMs` (or reaches four times the bound) it is closed as a slow client.
 */
import type WebSocket from 'ws';
import { metrics } from '../core/metrics.ts';

export interface OutboundLimits {
  maxBufferedBytes: number;
  slowGraceMs: number;
}

interface Entry {
  id: string | null;
  /** null once superseded (conflated) or forgotten. */
  frame: string | null;
}

/** The underlying net.Socket of a ws socket (ws keeps it private; cork/uncork batch writes). */
interface Corkable {
  cork(): void;
  uncork(): void;
}
const rawSocket = (ws: WebSocket): Corkable | undefined => (ws as unknown as { _socket?: Corkable })._socket;

export class Outbound {
  private entries: Entry[] = [];
  private readonly forming = new Map<string, Entry>();
  private queuedBytes = 0;
  /** Since when the unsent bytes are above the bound (ms), or null. */
  overSince: number | null = null;
  /** Closed as too slow: nothing more is queued or written. */
  dead = false;

  constructor(
    readonly ws: WebSocket,
    private readonly flusher: Flusher,
  ) {}

  /** A `next` message; the payload string is shared by every subscriber of its key. */
  next(id: string, idJson: string, payload: string, conflatable: boolean): void {
    const entry: Entry = { id, frame: `{"id":${idJson},"type":"next","payload":${payload}}` };
    if (conflatable) {
      const old = this.forming.get(id);
      if (old?.frame) {
        this.queuedBytes -= old.frame.length;
        old.frame = null;
        metrics.subscriptionDrops.inc({ kind: 'coalesced' });
      }
      this.forming.set(id, entry);
    }
    this.push(entry);
  }

  /** Any other message (error, complete, pong), in order with the subscription's data. */
  send(frame: string, id: string | null = null): void {
    this.push({ id, frame });
  }

  /** Drops what is still queued for a subscription the client completed. */
  forget(id: string): void {
    for (const e of this.entries)
      if (e.id === id && e.frame) {
        this.queuedBytes -= e.frame.length;
        e.frame = null;
      }
    this.forming.delete(id);
  }

  get unsentBytes(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  private push(entry: Entry): void {
    if (this.dead) return;
    this.entries.push(entry);
    this.queuedBytes += entry.frame!.length;
    this.flusher.mark(this);
  }

  /** Writes what the bound allows; true while the socket is above its bound. */
  flush(now: number, max: number): boolean {
    if (this.ws.readyState !== this.ws.OPEN) {
      this.entries = [];
      this.forming.clear();
      this.queuedBytes = 0;
      return false;
    }
    if (this.entries.length > 0 && this.ws.bufferedAmount < max) {
      const raw = rawSocket(this.ws);
      raw?.cork();
      let i = 0;
      let sent = 0;
      for (; i < this.entries.length && this.ws.bufferedAmount < max; i++) {
        const e = this.entries[i]!;
        if (e.frame === null) continue;
        this.queuedBytes -= e.frame.length;
        this.ws.send(e.frame);
        if (e.id !== null && this.forming.get(e.id) === e) this.forming.delete(e.id);
        sent++;
      }
      raw?.uncork();
      this.entries = i === this.entries.length ? [] : this.entries.slice(i);
      if (sent) metrics.wsDeliveries.inc(sent);
    }
    if (this.unsentBytes > max) {
      this.overSince ??= now;
      return true;
    }
    this.overSince = null;
    return this.entries.length > 0;
  }
}

/**
 * Flushes every socket that got frames, once per event-loop turn (setImmediate), and sweeps the
 * sockets above their bound on a timer, closing those that stay there past the grace period.
 */
export class Flusher {
  private readonly dirty = new Set<Outbound>();
  private readonly backlogged = new Set<Outbound>();
  private scheduled: ReturnType<typeof setImmediate> | null = null;
  private sweeper: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly limits: OutboundLimits,
    /** Closes a socket that stayed above its bound. */
    private readonly onSlow: (out: Outbound) => void,
    private readonly now: () => number = Date.now,
  ) {}

  mark(out: Outbound): void {
    if (out.dead || this.backlogged.has(out)) return; // the sweep writes it when it has room again
    this.dirty.add(out);
    this.scheduled ??= setImmediate(() => this.flushAll());
  }

  release(out: Outbound): void {
    this.dirty.delete(out);
    this.backlogged.delete(out);
  }

  close(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    if (this.sweeper) clearInterval(this.sweeper);
    this.scheduled = this.sweeper = null;
    this.dirty.clear();
    this.backlogged.clear();
  }

  private flushAll(): void {
    this.scheduled = null;
    const now = this.now();
    const dirty = [...this.dirty];
    this.dirty.clear();
    for (const out of dirty) this.settle(out, out.flush(now, this.limits.maxBufferedBytes), now);
  }

  private sweep(): void {
    const now = this.now();
    for (const out of this.backlogged) this.settle(out, out.flush(now, this.limits.maxBufferedBytes), now);
    if (this.backlogged.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private settle(out: Outbound, waiting: boolean, now: number): void {
    const over = out.overSince !== null;
    if (
      over &&
      (now - out.overSince! >= this.limits.slowGraceMs || out.unsentBytes > 4 * this.limits.maxBufferedBytes)
    ) {
      this.release(out);
      out.dead = true;
      this.onSlow(out);
      return;
    }
    if (!waiting) {
      this.backlogged.delete(out);
      return;
    }
    if (!over) {
      // More queued than one batch may write, but the socket keeps up: next turn.
      this.backlogged.delete(out);
      this.mark(out);
      return;
    }
    this.backlogged.add(out);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(5, Math.min(100, this.limits.slowGraceMs / 4)));
  }
}
