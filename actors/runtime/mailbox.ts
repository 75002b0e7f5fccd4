/**
 * A bounded FIFO mailbox. `put` waits while the mailbox is full (back-pressure on the source,
 * e.g. a JetStream consumer loop); `offer` never waits and reports whether the message fit
 * (for idempotent signals such as timer ticks, which may be dropped when one is queued).
 */
import { BadArgumentError, MailboxClosedError } from '../../core/errors.ts';

export class Mailbox<T> {
  private readonly items: T[] = [];
  private readonly takers: ((v: IteratorResult<T>) => void)[] = [];
  private readonly putters: (() => void)[] = [];
  private closed = false;

  constructor(
    readonly capacity: number,
    private readonly owner = 'actor',
  ) {
    if (capacity < 1) throw new BadArgumentError('mailbox capacity', 'must be >= 1');
  }

  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  offer(item: T): boolean {
    if (this.closed) return false;
    const taker = this.takers.shift();
    if (taker) {
      taker({ value: item, done: false });
      return true;
    }
    if (this.items.length >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  async put(item: T): Promise<void> {
    for (;;) {
      if (this.closed) throw new MailboxClosedError(this.owner);
      if (this.offer(item)) return;
      await new Promise<void>((resolve) => this.putters.push(resolve));
    }
  }

  /** Next message, or done once closed and drained. */
  take(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const item = this.items.shift() as T;
      this.putters.shift()?.();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.takers.push(resolve));
  }

  /** Stops accepting; queued messages can still be taken; waiting putters fail. */
  close(): void {
    this.closed = true;
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
    for (const p of this.putters.splice(0)) p();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return { next: () => this.take() };
  }
}
