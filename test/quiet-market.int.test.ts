/**
 * A quiet market still gets its bar on time: with no further trade, the symbol actor's timer
 * closes the bar once the estimated exchange clock passes the bucket end plus the grace.
 * The worker runs on a fake clock, so the test advances time instead of waiting a minute.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { subjects } from '../core/protocol/index.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades } from './support/trades.ts';

describe('quiet market', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;
  const clock = new FakeClock(Date.UTC(2024, 5, 1, 12, 0, 30));

  beforeAll(async () => {
    // Supervisor and worker share the fake clock: worker liveness is judged by timestamps, and
    // their timers (heartbeat, lease, reconcile poll) run only when the test advances it. So
    // the worker starts first and its one heartbeat stays in the bucket (long TTL) until the
    // leader's first reconcile places the actors.
    sys = await startSystem({
      exchange: { id: 'test', symbols: ['QUIET'] },
      config: { bars: { graceMs: 500 }, health: { ttlMs: 600_000 } },
      roles: ['worker', 'supervisor'],
      clock,
    });
    ({ db, cfg } = sys);
  });

  afterAll(async () => sys?.stop());

  it('closes the bar by timer, not before bucket end + grace', async () => {
    await using topo = await topology(cfg);
    await eventually(
      async () => (await topo.kv.health.get('symbol.test.QUIET'))?.operation === 'PUT',
      'actor started',
    );
    const t0 = Date.UTC(2024, 5, 1, 12, 0, 0);
    await publishTrades(topo.js, 'test', 'QUIET', [
      { id: '1', ts: t0 + 10_000, px: 5, qty: 1 },
      { id: '2', ts: t0 + 30_000, px: 5.4, qty: 2 },
    ]);
    // Applied = acknowledged by the actor (it acks after applying). The newest trade's
    // exchange time is the fake wall clock now, so the actor's clock offset is 0.
    await eventually(async () => {
      const ci = await topo.jsm.consumers.info('TRADES', 'sym_test_QUIET');
      return ci.ack_floor.stream_seq === 1 && ci.num_pending === 0;
    }, 'trades applied');
    const closed: { t: number; o: number; c: number; vol: number; n: number; closed: boolean }[] = [];
    let onBar: () => void = () => {};
    const sub = topo.nc.subscribe(subjects.bar('1m', 'test', 'QUIET'), {
      callback: (_e, m) => {
        closed.push(JSON.parse(new TextDecoder().decode(m.data)));
        onBar();
      },
    });
    await topo.nc.flush();
    // 12:01:00.4: the bucket is over but the grace (500 ms) is not: nothing may close.
    clock.advance(30_400);
    await new Promise((r) => setTimeout(r, 300));
    expect(closed).toEqual([]);
    const arrived = new Promise<void>((resolve) => {
      onBar = resolve;
    });
    clock.advance(200);
    await arrived;
    expect(closed).toEqual([expect.objectContaining({ t: t0, o: 5, c: 5.4, vol: 3, n: 2, closed: true })]);
    sub.unsubscribe();
    // The writer's flush timer runs on the same fake clock.
    const row = await eventually(async () => {
      clock.advance(100);
      return (await db.pool.query(`SELECT open, close, volume, trades FROM candles WHERE timeframe = '1m'`))
        .rows[0];
    }, 'bar stored');
    expect(row).toEqual({ open: 5, close: 5.4, volume: 3, trades: 2 });
  });
});
