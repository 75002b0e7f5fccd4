import { describe, expect, it } from 'vitest';
import { every, FakeClock, sleep } from './clock.ts';

describe('every', () => {
  it('runs once per period passed, first one period after the start', () => {
    const clock = new FakeClock(1000);
    const runs: number[] = [];
    every(clock, 250, () => runs.push(clock.now()));
    clock.advance(249);
    expect(runs).toEqual([]);
    clock.advance(1000);
    expect(runs).toEqual([1250, 1500, 1750, 2000]);
  });

  it('stops, also from inside its own run', () => {
    const clock = new FakeClock();
    let n = 0;
    const r = every(clock, 10, () => {
      if (++n === 3) r.stop();
    });
    clock.advance(1000);
    expect(n).toBe(3);
    expect(clock.pendingTimers()).toBe(0);
    const other = every(clock, 10, () => n++);
    other.stop();
    clock.advance(1000);
    expect(n).toBe(3);
  });
});

describe('sleep', () => {
  it('resolves when the clock passes the delay, or at once on abort', async () => {
    const clock = new FakeClock();
    let done = false;
    const slept = sleep(clock, 100).then(() => {
      done = true;
    });
    clock.advance(99);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await slept;
    const abort = new AbortController();
    const aborted = sleep(clock, 1e9, abort.signal);
    abort.abort();
    await aborted;
    expect(clock.pendingTimers()).toBe(0);
  });
});
