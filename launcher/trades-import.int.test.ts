import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../test/support/infra.ts';
import { importTrades } from './trades-import.ts';

describe('tickmesh trades import', () => {
  let db: TestDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase();
    dir = mkdtempSync(join(tmpdir(), 'tickmesh-import-'));
  });
  afterAll(async () => {
    await db?.[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads a file into the trades table, skips invalid rows, and keeps rows already there', async () => {
    const file = join(dir, 't.ndjson');
    const rows = [
      { symbol: 'BTC/USDT', id: '1', ts: 1_700_000_000_000, px: 100, qty: 1, side: 'buy' },
      { symbol: 'BTC/USDT', id: '2', ts: 1_700_000_001_000, px: -1, qty: 1 },
      { symbol: 'ETH/USDT', id: '3', ts: 1_700_000_002_000, px: 10, qty: 0.5, side: 'sell' },
    ];
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
    expect(await importTrades(db.pool, 'archive', file)).toEqual({ read: 2, inserted: 2, invalid: 1 });
    expect(await importTrades(db.pool, 'archive', file)).toEqual({ read: 2, inserted: 0, invalid: 1 });
    const { rows: stored } = await db.pool.query(
      `SELECT symbol, id, extract(epoch FROM ts) * 1000 AS ts, px, qty, side FROM trades ORDER BY id`,
    );
    expect(stored.map((r) => [r.symbol, r.id, Number(r.ts), r.px, r.qty, r.side])).toEqual([
      ['BTC/USDT', '1', 1_700_000_000_000, 100, 1, 'buy'],
      ['ETH/USDT', '3', 1_700_000_002_000, 10, 0.5, 'sell'],
    ]);
  });
});
