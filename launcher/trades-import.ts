/**
 * `tickmesh trades import`: loads a trade file (the replay formats: NDJSON, CSV, JSON array,
 * optionally gzipped) into the `trades` table, in batches, idempotently (the primary key drops
 * rows already there), so a replay exchange can use the database as its source.
 */
import { readTradeFile, type SymbolTrade } from '../actors/exchange/replay-source.ts';
import type { Pool } from '../core/db.ts';

const INSERT = `
INSERT INTO trades (exchange, symbol, id, ts, px, qty, side)
SELECT $1, sym, id, to_timestamp(ts / 1000.0), px, qty, side
  FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::text[]) AS u(sym, id, ts, px, qty, side)
ON CONFLICT DO NOTHING`;

export interface ImportResult {
  read: number;
  inserted: number;
  invalid: number;
}

export async function importTrades(
  pool: Pool,
  exchange: string,
  path: string,
  opts: { symbol?: string; batch?: number; onProgress?: (r: ImportResult) => void } = {},
): Promise<ImportResult> {
  const result: ImportResult = { read: 0, inserted: 0, invalid: 0 };
  let rows: SymbolTrade[] = [];
  const flush = async () => {
    if (rows.length === 0) return;
    const r = await pool.query(INSERT, [
      exchange,
      rows.map((x) => x.symbol),
      rows.map((x) => x.trade.id),
      rows.map((x) => x.trade.ts),
      rows.map((x) => x.trade.px),
      rows.map((x) => x.trade.qty),
      rows.map((x) => x.trade.side ?? null),
    ]);
    result.inserted += r.rowCount ?? 0;
    rows = [];
    opts.onProgress?.(result);
  };
  for await (const t of readTradeFile(path, {
    symbol: opts.symbol,
    onInvalid: () => {
      result.invalid++;
    },
  })) {
    result.read++;
    rows.push(t);
    if (rows.length >= (opts.batch ?? 5000)) await flush();
  }
  await flush();
  return result;
}
