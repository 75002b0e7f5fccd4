/**
 * The circuit breaker of an exchange feed, on the injected Clock (cockatiel's CircuitBreakerPolicy
 * reads Date.now(), so it cannot follow a fake clock): closed → open after `failures`
 * consecutive failures → half-open once `halfOpenAfterMs` has passed (one probe call at a time) →
 * closed on success, open again on failure.
 *
 * Callers either await `acquire` (the ccxt feed: several lanes wait for the circuit) or read
 * `state` and `openUntil` and sleep themselves (the Yahoo feed: one loop per symbol). A failure
 * may ask to stay open longer than `halfOpenAfterMs` (a Retry-After, a longer backoff).
 */
import type { Clock, TimerHandle } from './clock.ts';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failures: number;
  /** How long the circuit stays open before a half-open probe. */
  halfOpenAfterMs: number;
}

/** Transitions kept for health reports. */
const KEPT_TRANSITIONS = 20;

export class CircuitBreaker {
  readonly transitions: { to: CircuitState; at: number }[] = [];
  private current: CircuitState = 'closed';
  private consecutive = 0;
  private probing = false;
  private until = 0;
  private timer: TimerHandle | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly clock: Clock,
    private readonly opts: CircuitBreakerOptions,
    private readonly onChange: (to: CircuitState) => void = () => {},
  ) {}

  /** The state now (an open circuit whose time is up reads half-open). */
  get state(): CircuitState {
    if (this.current === 'open' && this.clock.now() >= this.until) this.move('half-open');
    return this.current;
  }

  /** When an open circuit turns half-open (null unless open). */
  get openUntil(): number | null {
    return this.state === 'open' ? this.until : null;
  }

  /** Consecutive failures since the last success. */
  get failures(): number {
    return this.consecutive;
  }

  /**
   * Resolves true when a call may go out (closed, or the one half-open probe, which the caller
   * settles with success, failure or release); false when `signal` aborted first.
   */
  async acquire(signal: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal.aborted) return false;
      const state = this.state;
      if (state === 'closed') return true;
      if (state === 'half-open' && !this.probing) {
        this.probing = true;
        return true;
      }
      if (state === 'open') this.wakeAtHalfOpen();
      await this.changed(signal);
    }
  }

  success(): void {
    this.consecutive = 0;
    this.probing = false;
    if (this.current !== 'closed') this.move('closed');
  }

  /** Gives the half-open probe back unused (the call never went out, or proved nothing). */
  release(): void {
    this.probing = false;
  }

  /** Counts a failure; returns whether it opened the circuit (open for at least `minOpenMs`). */
  failure(minOpenMs = 0): boolean {
    this.consecutive++;
    this.probing = false;
    const state = this.state;
    if (state === 'open') return false;
    if (state === 'half-open' || this.consecutive >= this.opts.failures) {
      this.open(Math.max(this.opts.halfOpenAfterMs, minOpenMs));
      return true;
    }
    return false;
  }

  dispose(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeAll();
  }

  private open(forMs: number): void {
    this.until = this.clock.now() + forMs;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.move('open');
  }

  /**
   * Wakes whoever waits in acquire when the open time is up. `state` itself turns half-open by
   * the time alone: the timer exists only while someone waits (a caller that sleeps on its own
   * leaves no timer behind).
   */
  private wakeAtHalfOpen(): void {
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.state === 'half-open') this.wakeAll();
    }, this.until - this.clock.now());
  }

  private move(to: CircuitState): void {
    this.current = to;
    this.transitions.push({ to, at: this.clock.now() });
    if (this.transitions.length > KEPT_TRANSITIONS) this.transitions.shift();
    if (to === 'closed') this.consecutive = 0;
    this.onChange(to);
    this.wakeAll();
  }

  private wakeAll(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves on the next transition (or abort), leaving no listener behind. */
  private changed(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
