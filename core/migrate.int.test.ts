import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb, testLog } from '../test/support/infra.ts';
import { migrate } from './migrate.ts';

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
      'candles',
      'data_quality_metrics',
      'exchanges',
      'indicators',
      'ml_features',
      'pgmigrations',
      'symbols',
      'trades',
    ]);
    expect(await migrate(db.url, testLog)).toEqual([]);
  });

  it('leave candles a plain table when TimescaleDB is absent', async () => {
    const ext = await db.pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
    expect(ext.rows).toEqual([]);
    const pk = await db.pool.query(
      `SELECT indexdef FROM pg_indexes WHERE tablename = 'candles' AND indexname = 'candles_pkey'`,
    );
    expect(pk.rows[0].indexdef).toMatch(/\(exchange, symbol, timeframe, ts\)/);
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
