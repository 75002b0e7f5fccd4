/**
 * NATS-backed subscriptions for GraphQL: one NATS subscription per distinct subject, shared
 * by every subscriber of this gateway; each subscriber gets a bounded queue. Superseded
 * forming updates are coalesced (a slow client sees the newest forming bar, not a backlog);
 * if closed bars pile up beyond the bound, the client is cut off with an error rather than
 * growing memory.
 *
 * Ingress is bounded and yielding: the NATS callback only queues the raw message on its topic
 * (a forming update replaces the one still waiting; closed bars and alerts queue up to
 * `ingressBacklog`, then the oldest are dropped and counted), and the queued messages are
 * decoded and handed on in slices on setImmediate, so a burst never holds the event loop.
 * After a NATS reconnect, `refill()` re-injects each topic's latest stored message (the
 * gateway looks up the latest closed bar), so no subscriber keeps a stale or missing bar.
 */

import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { SlowSubscriberError } from '../core/errors.ts';
import { metrics } from '../core/metrics.ts';
import { isConsumerDelivery } from '../core/nats.ts';
import { isLiveSubject } from '../core/protocol/index.ts';

export interface HubItem<T> {
  value: T;
  /** Items with the same non-null key replace each other while still queued. */
  coalesceKey: string | null;
}

export type Decoder<T> = (subject: string, data: Uint8Array) => HubItem<T> | null;

/** Values that a newer value of the same subscription supersedes (forming bars): conflatable downstream. */
const conflatableValues = new WeakSet<object>();
export function isConflatable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && conflatableValues.has(value);
}

/** A raw message waiting at ingress; `data` null once superseded by a newer forming update. */
interface Pending {
  subject: string;
  data: Uint8Array | null;
}

/** Messages handed on per slice before yielding to the event loop. */
const SLICE = 500;

class Subscriber<T> implements AsyncIterableIterator<T> {
  private readonly queue: HubItem<T>[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failing: ((e: Error) => void) | null = null;
  private error: Error | null = null;
  done = false;

  constructor(
    private readonly max: number,
    private readonly onClose: (s: Subscriber<T>) => void,
  ) {}

  push(item: HubItem<T>): void {
    if (this.done) return;
    if (item.coalesceKey !== null && typeof item.value === 'object' && item.value !== null)
      conflatableValues.add(item.value);
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failing = null;
      w({ value: item.value, done: false });
      return;
    }
    if (item.coalesceKey !== null) {
      const idx = this.queue.findIndex((q) => q.coalesceKey === item.coalesceKey);
      if (idx >= 0) {
        this.queue.splice(idx, 1);
        metrics.subscriptionDrops.inc({ kind: 'coalesced' });
      }
    }
    this.queue.push(item);
    if (this.queue.length > this.max) {
      metrics.subscriptionDrops.inc({ kind: 'cut_off' });
      this.fail(new SlowSubscriberError(this.max));
    }
  }

  fail(e: Error): void {
    if (this.done) return;
    this.error = e;
    this.queue.length = 0;
    if (this.failing) this.failing(e);
    this.finish();
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.queue.shift();
    if (item) return Promise.resolve({ value: item.value, done: false });
    if (this.error) {
      const e = this.error;
      this.error = null;
      return Promise.reject(e);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failing = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(e: Error): Promise<IteratorResult<T>> {
    this.finish();
    return Promise.reject(e);
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = this.failing = null;
    this.onClose(this);
  }
}

interface Topic {
  subject: string;
  sub: Subscription;
  subscribers: Set<Subscriber<unknown>>;
  decode: Decoder<unknown>;
  /** Raw messages not yet handed on, in arrival order. */
  pending: Pending[];
  /** The waiting forming update (replaced by a newer one). */
  forming: Pending | null;
  closed: boolean;
}

/** Looks up a topic's latest stored message (after a reconnect), or null. */
export type Refill = (subject: string) => Promise<{ subject: string; data: Uint8Array } | null>;

export interface TopicHubOptions {
  /** Closed messages waiting per topic at ingress before the oldest are dropped. */
  ingressBacklog?: number;
  refill?: Refill;
}

export class TopicHub {
  private readonly topics = new Map<string, Topic>();
  /** Topics with pending ingress, in the order they got it. */
  private readonly ready = new Set<Topic>();
  private draining: ReturnType<typeof setImmediate> | null = null;
  private readonly backlog: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly maxQueue: number,
    private readonly opts: TopicHubOptions = {},
  ) {
    this.backlog = opts.ingressBacklog ?? 10_000;
  }

  get topicCount(): number {
    return this.topics.size;
  }

  get subscriberCount(): number {
    let n = 0;
    for (const t of this.topics.values()) n += t.subscribers.size;
    return n;
  }

  subscribe<T>(subject: string, decode: Decoder<T>): AsyncIterableIterator<T> {
    let topic = this.topics.get(subject);
    if (!topic) {
      const created: Topic = {
        subject,
        sub: null as unknown as Subscription,
        subscribers: new Set<Subscriber<unknown>>(),
        decode: decode as Decoder<unknown>,
        pending: [],
        forming: null,
        closed: false,
      };
      created.sub = this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err || isConsumerDelivery(msg, 'gateway.subscriptions')) return;
          this.enqueue(created, msg.subject, msg.data);
        },
      });
      topic = created;
      this.topics.set(subject, topic);
      metrics.natsTopics.set(this.topics.size);
    }
    const t = topic;
    const subscriber = new Subscriber<T>(this.maxQueue, (s) => {
      t.subscribers.delete(s as Subscriber<unknown>);
      if (t.subscribers.size === 0 && this.topics.get(subject) === t) {
        t.sub.unsubscribe();
        t.closed = true;
        this.ready.delete(t);
        this.topics.delete(subject);
        metrics.natsTopics.set(this.topics.size);
      }
    });
    t.subscribers.add(subscriber as Subscriber<unknown>);
    return subscriber;
  }

  /** Re-injects every topic's latest stored message (after a NATS reconnect). */
  async refill(): Promise<number> {
    const refill = this.opts.refill;
    if (!refill) return 0;
    let n = 0;
    await Promise.all(
      [...this.topics.values()].map(async (t) => {
        const latest = await refill(t.subject).catch(() => null);
        if (latest && !t.closed) {
          this.enqueue(t, latest.subject, latest.data);
          n++;
        }
      }),
    );
    return n;
  }

  /** O(1) per message: queue it and make sure a slice will hand it on. */
  private enqueue(t: Topic, subject: string, data: Uint8Array): void {
    if (t.closed) return;
    if (isLiveSubject(subject)) {
      if (t.forming) {
        t.forming.data = null;
        metrics.subscriptionDrops.inc({ kind: 'ingress_conflated' });
      }
      t.forming = { subject, data };
      t.pending.push(t.forming);
    } else {
      t.pending.push({ subject, data });
      if (t.pending.length > this.backlog) {
        if (t.pending.shift() === t.forming) t.forming = null;
        metrics.subscriptionDrops.inc({ kind: 'ingress_overflow' });
      }
    }
    this.ready.add(t);
    this.draining ??= setImmediate(() => this.drain());
  }

  /** Hands on up to SLICE messages, then yields (setImmediate) if more are waiting. */
  private drain(): void {
    this.draining = null;
    let budget = SLICE;
    for (const t of this.ready) {
      while (budget > 0 && t.pending.length > 0) {
        const p = t.pending.shift()!;
        if (p === t.forming) t.forming = null;
        if (p.data === null) continue;
        budget--;
        const item = t.decode(p.subject, p.data);
        if (item) for (const s of t.subscribers) s.push(item);
      }
      if (t.pending.length > 0) break;
      this.ready.delete(t);
    }
    if (this.ready.size > 0) this.draining = setImmediate(() => this.drain());
  }

  close(): void {
    if (this.draining) clearImmediate(this.draining);
    this.draining = null;
    this.ready.clear();
    for (const t of this.topics.values()) {
      t.closed = true;
      for (const s of [...t.subscribers]) s.return();
      t.sub.unsubscribe();
    }
    this.topics.clear();
  }
}
