/** Stored candles as plain numbers, and their comparison with reference bars (barsFromTrades). */
import type { Pool } from '../../core/db.ts';
import type { Bar } from '../../core/protocol/index.ts';

export interface StoredBar {
  /** Open time, epoch ms. */
  t: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  gap: number;
}

/** Stored bars of one timeframe, ascending (optionally of one exchange / symbol / before a time). */
export async function storedBars(
  pool: Pool,
  tf: string,
  exchange?: string,
  symbol?: string,
  beforeMs?: number,
): Promise<StoredBar[]> {
  const { rows } = await pool.query<StoredBar>(
    `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, open, high, low, close, volume, trades, gap
       FROM candles WHERE timeframe = $1 AND ($2::text IS NULL OR exchange = $2) AND ($3::text IS NULL OR symbol = $3)
        AND ($4::float8 IS NULL OR ts < to_timestamp($4 / 1000.0))
      ORDER BY ts`,
    [tf, exchange ?? null, symbol ?? null, beforeMs ?? null],
  );
  return rows;
}

/**
 * A stored row equals a reference bar: time, OHLC, trade count and gap exactly; volume (a sum of
 * floats, summed in another order by the roll-up) to `volTol` relative to max(1, volume).
 */
export function sameBar(r: StoredBar, b: Bar, volTol = 1e-9): boolean {
  return (
    r.t === b.t &&
    r.open === b.o &&
    r.high === b.h &&
    r.low === b.l &&
    r.close === b.c &&
    r.trades === b.n &&
    r.gap === b.gap &&
    Math.abs(r.volume - b.vol) <= volTol * Math.max(1, Math.abs(b.vol))
  );
}
