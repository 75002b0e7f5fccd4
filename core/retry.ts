/**
 * Retry policies (cockatiel) for calls to NATS and PostgreSQL. Infrastructure outages are
 * ridden out here, with exponential backoff, instead of crashing actors: a crash loop during a
 * NATS restart would otherwise exhaust an actor's restart intensity for nothing.
 */
import { ExponentialBackoff, handleAll, type RetryPolicy, retry } from 'cockatiel';

/** Retries until the call succeeds or the signal passed to `execute` aborts. */
export function retryForever(initialDelay = 100, maxDelay = 2000): RetryPolicy {
  return retry(handleAll, {
    maxAttempts: Number.MAX_SAFE_INTEGER,
    backoff: new ExponentialBackoff({ initialDelay, maxDelay }),
  });
}

/** Retries for roughly `budgetMs` (start-up of an actor or a role), then gives up. */
export function retryFor(budgetMs: number, initialDelay = 100, maxDelay = 2000): RetryPolicy {
  const attempts = Math.max(
    1,
    Math.ceil(budgetMs / maxDelay) + Math.ceil(Math.log2(maxDelay / initialDelay)),
  );
  return retry(handleAll, {
    maxAttempts: attempts,
    backoff: new ExponentialBackoff({ initialDelay, maxDelay }),
  });
}
