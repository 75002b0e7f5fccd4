import ccxt from 'ccxt';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../../core/clock.ts';
import { parseStoredOptions } from '../../../core/exchanges-config.ts';
import { FeedContext } from './feed-context.ts';
import { RestLane } from './rest-lane.ts';
import { feedSettings } from './settings.ts';
import type { CcxtExchange } from './types.ts';

const T = 1_000_000;

function lane(entry: Record<string, unknown> = {}) {
  const o = parseStoredOptions('ccxt', {
    ccxt: { id: 'binance' },
    backoff: { initialMs: 100, maxMs: 100 },
    ...entry,
  });
  if (o.kind !== 'ccxt') throw new Error('kind');
  const clock = new FakeClock(T);
  const ex = { id: 'binance', last_response_headers: {} } as unknown as CcxtExchange;
  const ctx = new FeedContext(ex, clock, pino({ level: 'silent' }), feedSettings(o), {
    onTrades: async () => {},
  });
  return { ctx, clock, ex, rest: new RestLane(ctx) };
}

/** Lets the lane's promises run (no timers: those wait for the FakeClock). */
const flush = () => new Promise((r) => setImmediate(r));

describe('RestLane', () => {
  it('holds every request until a 429 Retry-After has passed on the clock, without counting a failure', async () => {
    const { clock, ex, rest } = lane();
    let calls = 0;
    const result = rest.run('fetchTrades', async () => {
      calls++;
      if (calls === 1) {
        ex.last_response_headers = { 'retry-after': '30' };
        throw new ccxt.RateLimitExceeded('429');
      }
      return 'page';
    });
    await vi.waitFor(() => expect(rest.retryAfterUntil).toBe(T + 30_000));
    expect(rest.blocked).toBe(true);
    clock.advance(29_999);
    await flush();
    expect(calls).toBe(1);
    clock.advance(1);
    expect(await result).toBe('page');
    expect(rest.circuit.state).toBe('closed');
    expect(rest.circuit.failures).toBe(0);
  });

  it('waits the fallback when a 429 carries no Retry-After', async () => {
    const { ex, rest } = lane();
    void rest.run('x', async () => {
      ex.last_response_headers = {};
      throw new ccxt.DDoSProtection('418');
    });
    await vi.waitFor(() => expect(rest.retryAfterUntil).toBe(T + 10_000));
  });

  it('counts network failures against the circuit and retries with backoff; gives up on a request the exchange rejects', async () => {
    const { clock, ctx, rest } = lane({ breaker: { failures: 2, halfOpenAfterMs: 5000 } });
    let calls = 0;
    const network = rest.run('x', async () => {
      calls++;
      if (calls <= 2) throw new ccxt.ExchangeNotAvailable('503');
      return 'ok';
    });
    await vi.waitFor(() => expect(calls).toBe(1));
    clock.advance(100); // the backoff
    await vi.waitFor(() => expect(rest.circuit.state).toBe('open'));
    expect(ctx.connection().state).toBe('unreachable'); // open with no connection standing
    clock.advance(5000); // half-open: one probe goes out and succeeds
    expect(await network).toBe('ok');
    expect(rest.circuit.state).toBe('closed');
    expect(ctx.connection().state).toBe('connecting');

    let refused = 0;
    const permanent = rest.run(
      'y',
      async () => {
        refused++;
        throw new ccxt.BadRequest('no');
      },
      2,
    );
    await vi.waitFor(() => expect(refused).toBe(1));
    clock.advance(100);
    await expect(permanent).rejects.toThrow(ccxt.BadRequest);
    expect(refused).toBe(2);
    expect(rest.circuit.failures).toBe(0); // not the exchange's health
  });

  it('runs one call at a time, in order', async () => {
    const { rest } = lane();
    const order: string[] = [];
    let release!: () => void;
    const first = rest.run('a', () => {
      order.push('a start');
      return new Promise<void>((r) => {
        release = () => {
          order.push('a end');
          r();
        };
      });
    });
    const second = rest.run('b', async () => void order.push('b'));
    await flush();
    expect(order).toEqual(['a start']);
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['a start', 'a end', 'b']);
  });
});
