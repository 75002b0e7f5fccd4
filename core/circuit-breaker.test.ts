import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.ts';
import { FakeClock } from './clock.ts';

const opts = { failures: 3, halfOpenAfterMs: 10_000 };

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, turns half-open on the clock, closes on success', () => {
    const clock = new FakeClock(1000);
    const seen: string[] = [];
    const b = new CircuitBreaker(clock, opts, (to) => seen.push(to));
    expect(b.failure()).toBe(false);
    b.success(); // a success in between resets the streak
    expect(b.failure()).toBe(false);
    expect(b.failure()).toBe(false);
    expect(b.failure()).toBe(true);
    expect(b.state).toBe('open');
    expect(b.openUntil).toBe(11_000);
    clock.advance(9_999);
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.state).toBe('half-open');
    expect(b.openUntil).toBeNull();
    b.success();
    expect(b.state).toBe('closed');
    expect(seen).toEqual(['open', 'half-open', 'closed']);
    expect(b.transitions.map((t) => [t.to, t.at])).toEqual([
      ['open', 1000],
      ['half-open', 11_000],
      ['closed', 11_000],
    ]);
  });

  it('a failed half-open probe opens it again at once; a failure may ask for a longer open time', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker(clock, opts);
    for (let i = 0; i < 3; i++) b.failure();
    clock.advance(10_000);
    expect(b.state).toBe('half-open');
    expect(b.failure(25_000)).toBe(true);
    expect(b.openUntil).toBe(35_000);
    clock.advance(24_999);
    expect(b.state).toBe('open');
    clock.advance(1);
    expect(b.state).toBe('half-open');
  });

  it('acquire lets calls through when closed, waits while open, hands out one half-open probe', async () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker(clock, opts);
    const signal = new AbortController().signal;
    expect(await b.acquire(signal)).toBe(true);
    for (let i = 0; i < 3; i++) b.failure();
    let first = false;
    let second = false;
    void b.acquire(signal).then((ok) => {
      first = ok;
    });
    void b.acquire(signal).then((ok) => {
      second = ok;
    });
    await Promise.resolve();
    expect([first, second]).toEqual([false, false]);
    clock.advance(10_000); // the timer wakes the waiters: one of them gets the probe
    await new Promise((r) => setImmediate(r));
    expect([first, second].filter(Boolean)).toHaveLength(1);
    b.release(); // the probe given back unused: the other waiter may probe
    b.success();
    await new Promise((r) => setImmediate(r));
    expect([first, second]).toEqual([true, true]);
  });

  it('acquire resolves false when its signal aborts while the circuit is open', async () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker(clock, opts);
    for (let i = 0; i < 3; i++) b.failure();
    const ac = new AbortController();
    const pending = b.acquire(ac.signal);
    ac.abort();
    expect(await pending).toBe(false);
  });
});
