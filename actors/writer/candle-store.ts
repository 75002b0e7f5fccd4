/**
 * Batched, idempotent upsert of closed bars into `candles`. Within a batch the newest
 * revision of a key wins; against the table, a row only changes when the incoming revision is
 * not older and some value differs, so a redelivered bar changes nothing (not even updated_at).
 */
import type { Pool } from '../../core/db.ts';
import type { Bar, QualityReport } from '../../core/protocol/index.ts';

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

const UPSERT_INDICATORS = `
INSERT INTO indicators AS i (exchange, symbol, timeframe, ts, "values")
SELECT ex, sym, tf, to_timestamp(t / 1000.0), v::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[]) AS u(ex, sym, tf, t, v)
ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET "values" = EXCLUDED."values", updated_at = now()
WHERE i."values" IS DISTINCT FROM EXCLUDED."values"`;

const UPSERT_FEATURES = `
INSERT INTO ml_features AS f (exchange, symbol, timeframe, ts, feature_version, features)
SELECT ex, sym, tf, to_timestamp(t / 1000.0), fv, v::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[], $6::text[]) AS u(ex, sym, tf, t, fv, v)
ON CONFLICT (exchange, symbol, timeframe, feature_version, ts) DO UPDATE SET features = EXCLUDED.features, updated_at = now()
WHERE f.features IS DISTINCT FROM EXCLUDED.features`;

const UPSERT_QUALITY = `
INSERT INTO data_quality_metrics AS q (exchange, symbol, ts, trades, accepted, checks, score)
SELECT ex, sym, to_timestamp(t / 1000.0), n, a, c::jsonb, s
FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[], $5::int[], $6::text[], $7::float8[]) AS u(ex, sym, t, n, a, c, s)
ON CONFLICT (exchange, symbol, ts) DO UPDATE SET trades = EXCLUDED.trades, accepted = EXCLUDED.accepted,
  checks = EXCLUDED.checks, score = EXCLUDED.score`;

/** What the analytics attached to closed bars, or sent as updates of already closed ones. */
export interface AnalyticsRow {
  ex: string;
  sym: string;
  tf: string;
  t: number;
  ind?: Record<string, number | null>;
  feat?: Record<string, unknown>;
  q?: QualityReport;
}

function columns<T>(rows: readonly T[], pick: (r: T) => unknown[]): unknown[][] {
  const width = rows.length ? pick(rows[0]!).length : 0;
  const cols: unknown[][] = Array.from({ length: width }, () => new Array(rows.length));
  rows.forEach((r, i) => {
    const v = pick(r);
    for (let c = 0; c < width; c++) cols[c]![i] = v[c];
  });
  return cols;
}

/**
 * Upserts indicators, features and quality reports. Later entries for the same key win
 * (they are newer: a bar's revision, or an update after an older bar's revision).
 */
export async function upsertAnalytics(pool: Pool, input: readonly AnalyticsRow[]): Promise<number> {
  const last = <T>(rows: T[], key: (r: T) => string) => [...new Map(rows.map((r) => [key(r), r])).values()];
  const k = (r: AnalyticsRow) => `${r.ex}\u0000${r.sym}\u0000${r.tf}\u0000${r.t}`;
  const ind = last(
    input.filter((r) => r.ind),
    k,
  );
  const feat = last(
    input.filter((r) => r.feat),
    k,
  );
  const q = last(
    input.filter((r) => r.q),
    (r) => `${r.ex}\u0000${r.sym}\u0000${r.t}`,
  );
  let n = 0;
  if (ind.length)
    n +=
      (
        await pool.query(
          UPSERT_INDICATORS,
          columns(ind, (r) => [r.ex, r.sym, r.tf, r.t, JSON.stringify(r.ind)]),
        )
      ).rowCount ?? 0;
  if (feat.length)
    n +=
      (
        await pool.query(
          UPSERT_FEATURES,
          columns(feat, (r) => [r.ex, r.sym, r.tf, r.t, Number(r.feat!.v ?? 0), JSON.stringify(r.feat)]),
        )
      ).rowCount ?? 0;
  if (q.length)
    n +=
      (
        await pool.query(
          UPSERT_QUALITY,
          columns(q, (r) => [
            r.ex,
            r.sym,
            r.t,
            r.q!.trades,
            r.q!.accepted,
            JSON.stringify(r.q!.checks),
            r.q!.score,
          ]),
        )
      ).rowCount ?? 0;
  return n;
}
