/**
 * kill -9 of a worker process in the middle of a trade stream: after a new process takes over,
 * the stored bars equal the bars computed from the full trade sequence (none missing, none
 * doubled, none garbled), for every timeframe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../actors/symbol/bar-builder.ts';
import type { Config } from '../core/config.ts';
import { decodeJson, type Timeframe } from '../core/protocol/index.ts';
import { type RoleHandle, startSupervisorRole } from '../launcher/roles.ts';
import {
  eventually,
  freshDatabase,
  startTestNats,
  type TestDb,
  type TestNats,
  testConfig,
  testLog,
  topology,
} from './support/infra.ts';
import { spawnRole } from './support/processes.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'ETH/USDT';
const START = Date.UTC(2024, 2, 1, 0, 0, 0);
const TFS: Timeframe[] = ['1m', '5m', '15m', '1h', '4h'];

describe('worker kill -9 and restart', () => {
  let nats: TestNats;
  let db: TestDb;
  let cfg: Config;
  let supervisor: RoleHandle;

  beforeAll(async () => {
    nats = await startTestNats();
    db = await freshDatabase();
    cfg = testConfig(nats, db);
    await db.pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ('test', 'Test feed', 'external')`);
    await db.pool.query(`INSERT INTO symbols (exchange, symbol) VALUES ('test', 'ETH/USDT')`);
    supervisor = await startSupervisorRole(cfg, testLog);
  });

  afterAll(async () => {
    await supervisor?.stop();
    await db?.[Symbol.asyncDispose]();
    await nats?.[Symbol.asyncDispose]();
  });

  const env = () => ({
    NATS_URL: nats.url,
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
    const closer = { id: '9999999', ts: trades.at(-1)!.ts + 6 * 3600_000, px: 1, qty: 1 };

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
          const r = await db.pool.query(
            `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, open, high, low, close, volume, trades, gap
             FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 ORDER BY ts`,
            [EX, SYM, tf],
          );
          return r.rows.length >= want.length ? r.rows : null;
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
