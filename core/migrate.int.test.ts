import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertBars } from '../actors/writer/candle-store.ts';
import { freshDatabase, type TestDb, testLog } from '../test/support/infra.ts';
import { migrate } from './migrate.ts';
import type { Bar } from './protocol/index.ts';

describe('migrations', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => db?.[Symbol.asyncDispose]());

  it('create the tables on plain PostgreSQL and are a no-op the second time', async () => {
    const { rows } = await db.pool.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'alert_deliveries',
      'alert_events',
      'alert_rules',
      'api_keys',
      'audit_log',
      'candles',
      'data_quality_metrics',
      'exchanges',
      'indicators',
      'login_failures',
      'ml_features',
      'pgmigrations',
      'refresh_tokens',
      'request_budgets',
      'symbols',
      'trades',
      'users',
    ]);
    expect(await migrate(db.url, testLog)).toEqual([]);
  });

  // CI has plain PostgreSQL; pointed at a server with TimescaleDB preloaded (TEST_DATABASE_URL,
  // README "Testing"), the same test checks the TimescaleDB branch of every migration.
  it('use TimescaleDB where it is preloaded, and leave plain tables where it is not', async () => {
    const { rows: setting } = await db.pool.query(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
              coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' AS preloaded`,
    );
    const usable = setting[0].available && setting[0].preloaded;
    const ext = await db.pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
    expect(ext.rows.length).toBe(usable ? 1 : 0);
    const pk = await db.pool.query(
      `SELECT indexdef FROM pg_indexes WHERE tablename = 'candles' AND indexname = 'candles_pkey'`,
    );
    expect(pk.rows[0].indexdef).toMatch(/\(exchange, symbol, timeframe, ts\)/);
    if (!usable) return;

    const { rows: tables } = await db.pool.query(
      `SELECT hypertable_name AS name, compression_enabled AS compressed
         FROM timescaledb_information.hypertables ORDER BY 1`,
    );
    expect(tables).toEqual([
      { name: 'candles', compressed: true },
      { name: 'data_quality_metrics', compressed: false },
      { name: 'indicators', compressed: false },
      { name: 'ml_features', compressed: false },
      { name: 'trades', compressed: false },
    ]);
    const { rows: jobs } = await db.pool.query(
      `SELECT job_id AS id, hypertable_name AS name, proc_name AS proc, config
         FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL ORDER BY 2, 3`,
    );
    expect(jobs.map((j) => [j.name, j.proc, j.config.drop_after ?? j.config.compress_after])).toEqual([
      ['candles', 'policy_compression', '30 days'],
      ['candles', 'policy_retention', '3650 days'],
      ['data_quality_metrics', 'policy_retention', '3650 days'],
      ['indicators', 'policy_retention', '3650 days'],
      ['ml_features', 'policy_retention', '3650 days'],
    ]);
    // Retention runs on bar time with one horizon: replayed 2019 history keeps its bars and
    // their quality reports.
    await db.pool.query(
      `INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume)
       VALUES ('old', 'XRP/ETH', '1m', '2019-10-01', 1, 1, 1, 1, 1)`,
    );
    await db.pool.query(
      `INSERT INTO data_quality_metrics (exchange, symbol, ts, trades, accepted, checks, score)
       VALUES ('old', 'XRP/ETH', '2019-10-01', 1, 1, '{}', 1)`,
    );
    for (const x of jobs.filter((y) => y.proc === 'policy_retention'))
      await db.pool.query(`CALL run_job(${x.id})`);
    const { rows: kept } = await db.pool.query(
      `SELECT (SELECT count(*) FROM candles WHERE exchange = 'old')::int AS candles,
              (SELECT count(*) FROM data_quality_metrics WHERE exchange = 'old')::int AS quality`,
    );
    expect(kept).toEqual([{ candles: 1, quality: 1 }]);

    // A revision of a bar whose chunk is already compressed (a late repair of an old bar)
    // still lands, and an identical redelivery still changes nothing.
    const t = Date.UTC(2024, 0, 1);
    const bar = (rev: number, c: number): Bar => ({
      v: 1,
      ex: 'x',
      sym: 'BTC/USDT',
      tf: '1m',
      t,
      o: 10,
      h: 12,
      l: 9,
      c,
      vol: 3,
      n: 3,
      closed: true,
      rev,
      gap: 0,
      ft: t + 1,
      lt: t + 50_000,
    });
    expect(await upsertBars(db.pool, [bar(0, 11)])).toBe(1);
    const { rows: compressed } = await db.pool.query(
      `SELECT compress_chunk(c) AS chunk FROM show_chunks('candles', newer_than => '2023-12-01'::timestamptz) c`,
    );
    expect(compressed).toHaveLength(1);
    expect(await upsertBars(db.pool, [bar(1, 11.5)])).toBe(1);
    expect(await upsertBars(db.pool, [bar(1, 11.5)])).toBe(0);
    const { rows: stored } = await db.pool.query(
      `SELECT close, revision, incomplete FROM candles WHERE exchange = 'x'`,
    );
    expect(stored).toEqual([{ close: 11.5, revision: 1, incomplete: false }]);
    // Re-running the migrations on a TimescaleDB database changes nothing.
    expect(await migrate(db.url, testLog)).toEqual([]);
  });

  it('notify the supervisor when symbols change', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('LISTEN tickmesh_symbols');
      const got = new Promise((resolve) => client.once('notification', resolve));
      await db.pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ('x', 'X', 'external')`);
      await expect(got).resolves.toMatchObject({ channel: 'tickmesh_symbols' });
    } finally {
      client.release();
    }
  });
});
