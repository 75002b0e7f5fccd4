/** Injected time, so tests advance a fake clock instead of sleeping. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  readonly id: number;
}

let nextId = 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    const handle = { id: nextId++, t };
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout((handle as unknown as { t: NodeJS.Timeout }).t);
  },
};

/** A manual clock: timers fire only when `advance` moves time past them. */
export class FakeClock implements Clock {
  private time: number;
  private timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = nextId++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle.id);
  }

  /** Moves time forward, firing due timers in time order (timers set while firing count too). */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let dueId: number | undefined;
      let dueAt = Number.POSITIVE_INFINITY;
      for (const [id, t] of this.timers) {
        if (t.at <= target && t.at < dueAt) {
          dueAt = t.at;
          dueId = id;
        }
      }
      if (dueId === undefined) break;
      const timer = this.timers.get(dueId)!;
      this.timers.delete(dueId);
      this.time = Math.max(this.time, timer.at);
      timer.fn();
    }
    this.time = target;
  }

  pendingTimers(): number {
    return this.timers.size;
  }
}

/**
 * Waits `ms` on `clock`. Resolves early (never rejects) when `signal` aborts, so a loop that
 * sleeps between attempts stops at once with its owner; the timer is cleared either way.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A repeating timer started by `every`; `stop` cancels the next run. */
export interface Repeating {
  stop(): void;
}

/**
 * Runs `fn` every `ms` on `clock` (first run one period from now) until stopped. Built on
 * `setTimeout`, so any `Clock` can drive it and a FakeClock fires one run per period passed.
 * Like `setInterval` it does not wait for async work started by `fn`: guard overlap there.
 */
export function every(clock: Clock, ms: number, fn: () => void): Repeating {
  // A zero period would make a FakeClock fire forever within one advance.
  const period = Math.max(1, ms);
  let handle: TimerHandle | null = null;
  let stopped = false;
  const run = () => {
    if (stopped) return;
    handle = clock.setTimeout(run, period);
    fn();
  };
  handle = clock.setTimeout(run, period);
  return {
    stop() {
      stopped = true;
      if (handle) clock.clearTimeout(handle);
      handle = null;
    },
  };
}
