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
  /** A control message (sent through ws), or null for a `next` (prefix + shared payload). */
  frame: string | null;
  prefix: Buffer | null;
  payload: Buffer | null;
  bytes: number;
  /** Superseded (conflated) or forgotten. */
  dropped: boolean;
}

/**
 * The underlying net.Socket of a ws socket (ws keeps it private). `next` frames are written to it
 * directly: a server frame is not masked, so the frame is a small header, the subscription's
 * cached prefix, the payload Buffer shared by every subscriber of the key (no copy), and `}`.
 * ws writes synchronously without permessage-deflate (off), so the order with its own frames
 * (ack, pong, close) is kept. cork/uncork makes a socket's batch one writev.
 */
interface RawSocket {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
}
const rawSocket = (ws: WebSocket): RawSocket | undefined =>
  (ws as unknown as { _socket?: RawSocket })._socket;
const SUFFIX = Buffer.from('}');

/** The header of an unmasked, final text frame of `length` bytes (RFC 6455 5.2). */
function frameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x81, length]);
  if (length < 65_536) return Buffer.from([0x81, 126, length >> 8, length & 0xff]);
  const h = Buffer.alloc(10);
  h[0] = 0x81;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h;
}

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

  /** A `next` message: `prefix` is the subscription's, the payload shared by every subscriber of its key. */
  next(id: string, prefix: Buffer, payload: Buffer, conflatable: boolean): void {
    const entry: Entry = {
      id,
      frame: null,
      prefix,
      payload,
      bytes: prefix.length + payload.length + 1,
      dropped: false,
    };
    if (conflatable) {
      const old = this.forming.get(id);
      if (old && !old.dropped) {
        this.drop(old);
        metrics.subscriptionDrops.inc({ kind: 'coalesced' });
      }
      this.forming.set(id, entry);
    }
    this.push(entry);
  }

  /** Any other message (error, complete, pong), in order with the subscription's data. */
  send(frame: string, id: string | null = null): void {
    this.push({ id, frame, prefix: null, payload: null, bytes: frame.length, dropped: false });
  }

  /** Drops what is still queued for a subscription the client completed. */
  forget(id: string): void {
    for (const e of this.entries) if (e.id === id && !e.dropped) this.drop(e);
    this.forming.delete(id);
  }

  private drop(e: Entry): void {
    this.queuedBytes -= e.bytes;
    e.dropped = true;
  }

  get unsentBytes(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  private push(entry: Entry): void {
    if (this.dead) return;
    this.entries.push(entry);
    this.queuedBytes += entry.bytes;
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
        if (e.dropped) continue;
        this.queuedBytes -= e.bytes;
        if (e.frame !== null) this.ws.send(e.frame);
        else if (raw) {
          raw.write(frameHeader(e.bytes));
          raw.write(e.prefix!);
          raw.write(e.payload!);
          raw.write(SUFFIX);
        }
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
