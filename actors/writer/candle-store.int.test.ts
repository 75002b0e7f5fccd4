import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bar } from '../../core/protocol/index.ts';
import { freshDatabase, type TestDb } from '../../test/support/infra.ts';
import { dedupeBars, upsertBars } from './candle-store.ts';

const T = Date.UTC(2024, 0, 1);
const bar = (over: Partial<Bar> = {}): Bar => ({
  v: 1,
  ex: 'sim',
  sym: 'BTC/USDT',
  tf: '1m',
  t: T,
  o: 10,
  h: 12,
  l: 9,
  c: 11,
  vol: 3,
  n: 3,
  closed: true,
  rev: 0,
  gap: 0,
  ft: T + 1,
  lt: T + 50_000,
  ...over,
});

describe('upsertBars', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => db?.[Symbol.asyncDispose]());

  const rows = async () =>
    (
      await db.pool.query(
        'SELECT ts, open, high, low, close, volume, trades, revision, updated_at FROM candles ORDER BY ts',
      )
    ).rows;

  it('inserts, then leaves an identical redelivery untouched (not even updated_at)', async () => {
    expect(await upsertBars(db.pool, [bar(), bar({ t: T + 60_000 })])).toBe(2);
    const before = await rows();
    expect(await upsertBars(db.pool, [bar(), bar({ t: T + 60_000 })])).toBe(0);
    expect(await rows()).toEqual(before);
  });

  it('applies a newer revision and ignores an older one arriving later', async () => {
    expect(await upsertBars(db.pool, [bar({ rev: 1, h: 15, n: 4, vol: 4 })])).toBe(1);
    expect(await upsertBars(db.pool, [bar({ rev: 0 })])).toBe(0);
    const [first] = await rows();
    expect(first).toMatchObject({ high: 15, trades: 4, revision: 1 });
  });

  it('keeps the newest revision of a key within one batch', () => {
    const out = dedupeBars([bar({ rev: 2, c: 12 }), bar({ rev: 1, c: 10 }), bar({ tf: '5m' })]);
    expect(out).toHaveLength(2);
    expect(out.find((b) => b.tf === '1m')).toMatchObject({ rev: 2, c: 12 });
  });

  it('refuses an OHLC-insane bar at the database too', async () => {
    await expect(upsertBars(db.pool, [bar({ t: T + 120_000, h: 1 })])).rejects.toThrow(/candles_check/);
  });
});
