/**
 * Login brute force: failed logins are counted per username and per client address
 * (rate-limiter-flexible on the `login_failures` table, so every gateway replica sees the same
 * counts and a restart does not clear them). Each failure answers later than the last
 * (250 ms doubling, at most 4 s), and once either count reaches its limit within the lock-out
 * window, logins for that user or from that address are refused until the window ends, even
 * with the right password. A good login clears its user's count.
 */
import { RateLimiterPostgres, type RateLimiterRes } from 'rate-limiter-flexible';
import type { Pool } from '../core/db.ts';
import { LoginLockedError } from '../core/errors.ts';

export interface LoginLimits {
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  lockoutMs: number;
}

const MAX_DELAY_MS = 4000;

export class LoginGuard {
  private readonly byUser: RateLimiterPostgres;
  private readonly byAddress: RateLimiterPostgres;

  constructor(
    private readonly limits: LoginLimits,
    pool: Pool,
  ) {
    const table = {
      storeClient: pool,
      storeType: 'pool',
      tableName: 'login_failures',
      // The table comes from migrations/, like every other table.
      tableCreated: true,
      duration: Math.ceil(limits.lockoutMs / 1000),
    };
    this.byUser = new RateLimiterPostgres({ ...table, keyPrefix: 'user', points: limits.maxFailuresPerUser });
    this.byAddress = new RateLimiterPostgres({
      ...table,
      keyPrefix: 'addr',
      points: limits.maxFailuresPerAddress,
    });
  }

  /** Throws LoginLockedError while the user or the address is locked out. */
  async check(username: string, address: string): Promise<void> {
    const [user, addr] = await Promise.all([this.byUser.get(username), this.byAddress.get(address)]);
    const wait = Math.max(
      lockedFor(user, this.limits.maxFailuresPerUser),
      lockedFor(addr, this.limits.maxFailuresPerAddress),
    );
    if (wait > 0) throw new LoginLockedError(wait);
  }

  /** Counts a failure; returns how long to hold the answer back. */
  async failed(username: string, address: string): Promise<number> {
    const [user] = await Promise.all([spend(this.byUser, username), spend(this.byAddress, address)]);
    return Math.min(MAX_DELAY_MS, 250 * 2 ** Math.max(0, user.consumedPoints - 1));
  }

  async succeeded(username: string): Promise<void> {
    await this.byUser.delete(username);
  }
}

function lockedFor(res: RateLimiterRes | null, limit: number): number {
  return res && res.consumedPoints >= limit ? res.msBeforeNext : 0;
}

/** Consumes one point; over the limit the library rejects with the same record. */
async function spend(limiter: RateLimiterPostgres, key: string): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key);
  } catch (res) {
    if (res instanceof Error) throw res;
    return res as RateLimiterRes;
  }
}
