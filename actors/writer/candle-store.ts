/**
 * Batched, idempotent upsert of closed bars into `candles`. Within a batch the newest
 * revision of a key wins; against the table, a row only changes when the incoming revision is
 * not older and some value differs, so a redelivered bar changes nothing (not even updated_at).
 */
import type { Pool } from '../../core/db.ts';
import type { Bar } from '../../core/protocol/index.ts';

export function dedupeBars(bars: readonly Bar[]): Bar[] {
  const byKey = new Map<string, Bar>();
  for (const b of bars) {
    const k = `${b.ex}\u0000${b.sym}\u0000${b.tf}\u0000${b.t}`;
    const prev = byKey.get(k);
    if (!prev || b.rev >= prev.rev) byKey.set(k, b);
  }
  return [...byKey.values()];
}

const UPSERT = `
INSERT INTO candles AS c (exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, gap, revision,
                          first_trade_at, last_trade_at, source, incomplete)
SELECT ex, sym, tf, to_timestamp(t / 1000.0), o, h, l, cl, vol, n, gap, rev,
       to_timestamp(ft / 1000.0), to_timestamp(lt / 1000.0), src, inc
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[],
            $9::float8[], $10::int[], $11::int[], $12::int[], $13::float8[], $14::float8[], $15::text[], $16::bool[])
     AS u(ex, sym, tf, t, o, h, l, cl, vol, n, gap, rev, ft, lt, src, inc)
ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET
  open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
  volume = EXCLUDED.volume, trades = EXCLUDED.trades, gap = EXCLUDED.gap, revision = EXCLUDED.revision,
  first_trade_at = EXCLUDED.first_trade_at, last_trade_at = EXCLUDED.last_trade_at,
  source = EXCLUDED.source, incomplete = EXCLUDED.incomplete, updated_at = now()
WHERE c.revision <= EXCLUDED.revision
  AND (c.open, c.high, c.low, c.close, c.volume, c.trades, c.gap, c.revision, c.source, c.incomplete)
      IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume,
                        EXCLUDED.trades, EXCLUDED.gap, EXCLUDED.revision, EXCLUDED.source, EXCLUDED.incomplete)`;

const COLUMNS = 16;

/** Upserts the bars in one statement; returns the number of rows inserted or changed. */
export async function upsertBars(pool: Pool, input: readonly Bar[]): Promise<number> {
  const bars = dedupeBars(input);
  if (bars.length === 0) return 0;
  const cols: unknown[][] = Array.from({ length: COLUMNS }, () => new Array(bars.length));
  bars.forEach((b, i) => {
    const row = [
      ...[b.ex, b.sym, b.tf, b.t, b.o, b.h, b.l, b.c, b.vol, b.n, b.gap, b.rev, b.ft, b.lt],
      b.src ? 'source' : 'trades',
      b.inc === true,
    ];
    for (let c = 0; c < COLUMNS; c++) cols[c]![i] = row[c];
  });
  const res = await pool.query(UPSERT, cols);
  return res.rowCount ?? 0;
}
