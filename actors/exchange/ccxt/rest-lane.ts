/**
 * The feed's REST lane: one exchange call at a time, each only when the exchange may be asked
 * (no Retry-After pending, the circuit allows). One lane because ccxt leaves the Retry-After
 * header of a 429/418 only in `exchange.last_response_headers`, which a concurrent call would
 * overwrite. Transient failures (ccxt NetworkError: 5xx, timeouts, refused connections) count
 * against the circuit and retry with backoff until the feed stops; other errors (a request the
 * exchange rejects) are retried a few times, then thrown.
 */
import ccxt from 'ccxt';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { CircuitBreaker } from '../../../core/circuit-breaker.ts';
import { headerValue, parseRetryAfter } from '../../../core/retry-after.ts';
import type { FeedContext } from './feed-context.ts';

export class RestLane {
  readonly circuit: CircuitBreaker;
  /** Clock time before which no request goes out (a 429/418's Retry-After). */
  retryAfterUntil = 0;
  /** The exchange's own count of used request weight, where it reports one (Binance). */
  weightUsed: number | undefined;
  private lane: Promise<unknown> = Promise.resolve();
  private readonly backoff: ExponentialBackoff<unknown>;

  constructor(private readonly ctx: FeedContext) {
    this.circuit = new CircuitBreaker(ctx.clock, ctx.s.breaker, (to) => {
      ctx.log.warn({ circuit: to }, `circuit ${to}`);
      // Open while nothing stands: every dial and call failed. Closed again: a call got through,
      // the connection is being made.
      if (ctx.connected) return;
      if (to === 'open') ctx.setConnection('unreachable');
      else if (to === 'closed') ctx.setConnection('connecting');
    });
    this.backoff = new ExponentialBackoff(ctx.s.backoff);
  }

  /** REST may not be asked now (repairs and polls wait). */
  get blocked(): boolean {
    return this.circuit.state === 'open' || this.retryAfterUntil > this.ctx.clock.now();
  }

  /** Runs `call` in the lane; undefined when the feed stopped first. */
  run<T>(what: string, call: () => Promise<T>, permanentAttempts = 3): Promise<T | undefined> {
    const ctx = this.ctx;
    const run = this.lane.then(async () => {
      let backoff: IBackoff<unknown> | undefined;
      let permanentFailures = 0;
      while (!ctx.stopped) {
        if (!(await this.gate())) return undefined;
        ctx.counters.restCalls++;
        try {
          const result = await call();
          this.circuit.success();
          this.noteWeight();
          return result;
        } catch (err) {
          if (ctx.stopped) return undefined;
          ctx.noteError(err, what);
          if (isRateLimit(err)) {
            this.honourRetryAfter(); // the gate waits it out; not a health failure
            this.circuit.release();
            continue;
          }
          if (err instanceof ccxt.NetworkError) this.circuit.failure();
          else {
            this.circuit.release();
            if (++permanentFailures >= permanentAttempts) throw err;
          }
          backoff = backoff ? backoff.next(undefined) : this.backoff.next();
          await ctx.sleep(backoff.duration);
        }
      }
      return undefined;
    });
    this.lane = run.catch(() => {});
    return run;
  }

  /** Waits until a request (or a websocket dial) may go out; false when the feed stopped meanwhile. */
  async gate(): Promise<boolean> {
    const ctx = this.ctx;
    for (;;) {
      if (ctx.stopped) return false;
      const wait = this.retryAfterUntil - ctx.clock.now();
      if (wait > 0) {
        await ctx.sleep(wait);
        continue;
      }
      if (!(await this.circuit.acquire(ctx.signal))) return false;
      if (this.retryAfterUntil <= ctx.clock.now()) return true;
      this.circuit.release(); // a Retry-After came in while we waited
    }
  }

  dispose(): void {
    this.circuit.dispose();
  }

  /** Holds every request until the failed answer's Retry-After (or the fallback) has passed. */
  private honourRetryAfter(): void {
    const now = this.ctx.clock.now();
    const header = headerValue(this.ctx.ex.last_response_headers, 'Retry-After');
    const waitMs = parseRetryAfter(header, now) ?? this.ctx.s.rateLimitFallbackMs;
    this.retryAfterUntil = Math.max(this.retryAfterUntil, now + waitMs);
    this.ctx.log.warn({ retryAfterMs: waitMs }, 'rate limited by the exchange; holding every request');
  }

  private noteWeight(): void {
    const h = this.ctx.ex.last_response_headers ?? {};
    const key = Object.keys(h).find((k) => /^x-mbx-used-weight(-1m)?$/i.test(k));
    const weight = key === undefined ? Number.NaN : Number(h[key]);
    if (Number.isFinite(weight)) this.weightUsed = weight;
  }
}

const isRateLimit = (err: unknown): boolean =>
  err instanceof ccxt.DDoSProtection || err instanceof ccxt.RateLimitExceeded;
