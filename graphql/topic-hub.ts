/**
 * NATS-backed subscriptions for GraphQL: one NATS subscription per distinct subject, shared
 * by every subscriber of this gateway; each subscriber gets a bounded queue. Superseded
 * forming updates are coalesced (a slow client sees the newest forming bar, not a backlog);
 * if closed bars pile up beyond the bound, the client is cut off with an error rather than
 * growing memory.
 */

import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { SlowSubscriberError } from '../core/errors.ts';
import { metrics } from '../core/metrics.ts';
import { isConsumerDelivery } from '../core/nats.ts';

export interface HubItem<T> {
  value: T;
  /** Items with the same non-null key replace each other while still queued. */
  coalesceKey: string | null;
}

export type Decoder<T> = (subject: string, data: Uint8Array) => HubItem<T> | null;

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
  sub: Subscription;
  subscribers: Set<Subscriber<unknown>>;
}

export class TopicHub {
  private readonly topics = new Map<string, Topic>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly maxQueue: number,
  ) {}

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
      const subscribers = new Set<Subscriber<unknown>>();
      const sub = this.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err || isConsumerDelivery(msg, 'gateway.subscriptions')) return;
          const item = decode(msg.subject, msg.data);
          if (!item) return;
          for (const s of subscribers) s.push(item);
        },
      });
      topic = { sub, subscribers };
      this.topics.set(subject, topic);
      metrics.natsTopics.set(this.topics.size);
    }
    const t = topic;
    const subscriber = new Subscriber<T>(this.maxQueue, (s) => {
      t.subscribers.delete(s as Subscriber<unknown>);
      metrics.subscriptions.dec();
      if (t.subscribers.size === 0 && this.topics.get(subject) === t) {
        t.sub.unsubscribe();
        this.topics.delete(subject);
        metrics.natsTopics.set(this.topics.size);
      }
    });
    t.subscribers.add(subscriber as Subscriber<unknown>);
    metrics.subscriptions.inc();
    return subscriber;
  }

  close(): void {
    for (const t of this.topics.values()) {
      for (const s of [...t.subscribers]) s.return();
      t.sub.unsubscribe();
    }
    this.topics.clear();
  }
}
