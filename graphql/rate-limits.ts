/**
 * Request budgets per principal: the user of an access token (`user:<name>`), an API key
 * (`apikey:<id>`), else the client address (`ip:<address>`). Each kind of request has its own
 * budget of points per window (config `gateway.rateLimits`); logins are always counted per
 * address. The counts live in the `request_budgets` table (rate-limiter-flexible's
 * RateLimiterPostgres), so every gateway replica spends from the same budget; while the
 * database cannot be reached, each replica falls back to an in-memory budget of the same size
 * (the insurance limiter), so requests are still limited, per replica. A principal over budget
 * is remembered in memory until its window ends, so a flood costs no database writes.
 */
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import type { AuthContext } from './callers.ts';

export const BUDGET_KINDS = ['query', 'mutation', 'login', 'subscribe'] as const;
export type BudgetKind = (typeof BUDGET_KINDS)[number];

export type RateLimitsConfig = Config['gateway']['rateLimits'];

/** The principal a request is charged to. */
export function principalOf(ctx: Pick<AuthContext, 'caller' | 'address'>): string {
  const actor = ctx.caller?.actor;
  if (actor) return actor.startsWith('apikey:') ? actor : `user:${actor}`;
  return `ip:${ctx.address ?? 'unknown'}`;
}

export class RequestBudgets {
  private readonly limiters: Map<BudgetKind, RateLimiterPostgres>;

  constructor(
    private readonly cfg: RateLimitsConfig,
    pool: Pool,
  ) {
    this.limiters = new Map(
      BUDGET_KINDS.map((kind) => {
        const { points, durationSec } = cfg[kind];
        const limiter = new RateLimiterPostgres({
          storeClient: pool,
          storeType: 'pool',
          tableName: 'request_budgets',
          // The table comes from migrations/, like every other table.
          tableCreated: true,
          keyPrefix: kind,
          points,
          duration: durationSec,
          inMemoryBlockOnConsumed: points + 1,
          // One sweep of expired rows (hourly-old ones, every 5 minutes) is enough for the shared table.
          clearExpiredByTimeout: kind === 'query',
          insuranceLimiter: new RateLimiterMemory({ keyPrefix: kind, points, duration: durationSec }),
        });
        return [kind, limiter];
      }),
    );
  }

  /**
   * Spends `points` of `principal`'s budget of this kind: null when within it, else how many
   * milliseconds until the budget has room again.
   */
  async consume(principal: string, kind: BudgetKind, points = 1): Promise<number | null> {
    if (!this.cfg.enabled || points <= 0) return null;
    try {
      await this.limiters.get(kind)!.consume(principal, points);
      return null;
    } catch (e) {
      if (e instanceof RateLimiterRes) return Math.max(1, e.msBeforeNext);
      throw e;
    }
  }
}
