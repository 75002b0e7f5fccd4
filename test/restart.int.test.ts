/**
 * kill -9 of a worker process in the middle of a trade stream: after a new process takes over,
 * the stored bars equal the bars computed from the full trade sequence (none missing, none
 * doubled, none garbled), for every timeframe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Config } from '../core/config.ts';
import { decodeJson, type Timeframe } from '../core/protocol/index.ts';
import { eventually, topology } from './support/infra.ts';
import { spawnRole } from './support/processes.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'ETH/USDT';
const START = Date.UTC(2024, 2, 1, 0, 0, 0);
const TFS: Timeframe[] = ['1m', '5m', '15m', '1h', '4h'];

describe('worker kill -9 and restart', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;

  beforeAll(async () => {
    // The supervisor runs here; the worker is a child process the test can kill -9.
    sys = await startSystem({ exchange: { id: EX, symbols: [SYM] }, roles: ['supervisor'] });
    ({ db, cfg } = sys);
  });

  afterAll(async () => sys?.stop());

  const env = () => ({
    ...sys.nats.env(),
    DATABASE_URL: db.url,
    TICKMESH_WORKER_ID: 'w1',
    SIM_ENABLED: 'false',
    BAR_GRACE_MS: '200',
    HEARTBEAT_MS: '300',
    HEALTH_TTL_MS: '2000',
  });

  async function runningSession(
    topo: Awaited<ReturnType<typeof topology>>,
    previous?: string,
  ): Promise<string> {
    return eventually(
      async () => {
        const e = await topo.kv.health.get('symbol.test.ETH-USDT');
        const rec = e && e.operation === 'PUT' ? decodeJson(e.value) : null;
        const h = rec?.ok ? (rec.value as { status: string; sessionId: string }) : null;
        return h && h.status === 'running' && h.sessionId !== previous ? h.sessionId : null;
      },
      'symbol actor running',
      30_000,
    );
  }

  it('stores exactly the bars of the full trade sequence after kill -9 mid-stream', async () => {
    await using topo = await topology(cfg);
    const trades = syntheticTrades({ start: START, count: 20_000, seed: 99 });
    const half = 8_000;
    const closer = { id: '9999999', ts: trades.at(-1)!.ts + 6 * 3600_000, px: trades.at(-1)!.px, qty: 1 };

    const first = spawnRole('worker', env());
    const s1 = await runningSession(topo);
    await publishTrades(topo.js, EX, SYM, trades.slice(0, half), 20);
    // Some bars are in the database, so the actor is mid-stream; kill it while more arrive.
    await eventually(
      async () => (await db.pool.query(`SELECT count(*) AS n FROM candles`)).rows[0].n > 20,
      'first bars stored',
    );
    const more = publishTrades(topo.js, EX, SYM, trades.slice(half, half + 4000), 20);
    const code = await first.kill('SIGKILL');
    expect(code).toBeNull();
    await more;

    const second = spawnRole('worker', env());
    await runningSession(topo, s1);
    await publishTrades(topo.js, EX, SYM, trades.slice(half + 4000), 20);
    await publishTrades(topo.js, EX, SYM, [closer]);

    for (const tf of TFS) {
      const want = barsFromTrades(EX, SYM, tf, trades);
      const rows = await eventually(
        async () => {
          const r = await storedBars(db.pool, tf, EX, SYM);
          return r.length >= want.length ? r : null;
        },
        `${tf} bars after restart`,
        30_000,
      ).catch(async (e) => {
        const n = await db.pool.query('SELECT timeframe, count(*) FROM candles GROUP BY 1');
        throw new Error(
          `${e.message}; want ${want.length}; have ${JSON.stringify(n.rows)}; worker output: ${second.output().slice(-3000)}`,
        );
      });
      expect(rows.map((r) => r.t)).toEqual(want.map((b) => b.t));
      rows.forEach((r, i) => {
        const b = want[i]!;
        expect({ ...r, volume: Number(r.volume.toFixed(6)) }).toEqual({
          t: b.t,
          open: b.o,
          high: b.h,
          low: b.l,
          close: b.c,
          volume: Number(b.vol.toFixed(6)),
          trades: b.n,
          gap: b.gap,
        });
      });
    }
    await second.kill('SIGTERM');
    expect(second.output()).not.toMatch(/"level":(50|60)/);
  });
});
