/** Reading candles and mapping bars to the GraphQL `Candle` shape. */
import type { Pool } from '../core/db.ts';
import { BadArgumentError, LimitExceededError } from '../core/errors.ts';
import type { Bar, Timeframe } from '../core/protocol/index.ts';

export interface Candle {
  exchange: string;
  symbol: string;
  timeframe: string;
  time: string;
  timeMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  closed: boolean;
  gap: number;
  revision: number;
  /** TRADES (built from trades) or SOURCE (the source's own 1m bars, e.g. Yahoo). */
  source: 'TRADES' | 'SOURCE';
  /** Part of the window was lost in an unrepairable feed outage. */
  incomplete: boolean;
}

export function candleOfBar(b: Bar): Candle {
  return {
    exchange: b.ex,
    symbol: b.sym,
    timeframe: b.tf,
    time: new Date(b.t).toISOString(),
    timeMs: b.t,
    open: b.o,
    high: b.h,
    low: b.l,
    close: b.c,
    volume: b.vol,
    trades: b.n,
    closed: b.closed,
    gap: b.gap,
    revision: b.rev,
    source: b.src ? 'SOURCE' : 'TRADES',
    incomplete: b.inc === true,
  };
}

/** Accepts ISO-8601 or epoch milliseconds (as a string). */
export function parseTime(name: string, value: string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  const ms = /^-?\d+$/.test(value.trim()) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new BadArgumentError(name, `${JSON.stringify(value)} is neither ISO-8601 nor epoch milliseconds`);
  return ms;
}

export interface CandleQuery {
  exchange: string;
  symbol: string;
  timeframe: Timeframe;
  from: number | null;
  to: number | null;
  limit: number;
}

export function checkLimit(limit: number | null | undefined, def: number, max: number): number {
  if (limit === null || limit === undefined) return def;
  if (!Number.isInteger(limit) || limit < 1)
    throw new BadArgumentError('limit', 'must be a positive integer');
  if (limit > max) throw new LimitExceededError('limit', max);
  return limit;
}

interface Row {
  ts: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  gap: number;
  revision: number;
  source: 'trades' | 'source';
  incomplete: boolean | null;
}

export async function readCandles(pool: Pool, q: CandleQuery): Promise<Candle[]> {
  const cols = 'ts, open, high, low, close, volume, trades, gap, revision, source, incomplete';
  const where = 'exchange = $1 AND symbol = $2 AND timeframe = $3';
  const params: unknown[] = [q.exchange, q.symbol, q.timeframe, q.limit];
  let sql: string;
  if (q.from !== null) {
    params.push(new Date(q.from), q.to === null ? null : new Date(q.to));
    sql = `SELECT ${cols} FROM candles WHERE ${where} AND ts >= $5 AND ($6::timestamptz IS NULL OR ts < $6)
           ORDER BY ts ASC LIMIT $4`;
  } else {
    params.push(q.to === null ? null : new Date(q.to));
    sql = `SELECT * FROM (SELECT ${cols} FROM candles WHERE ${where} AND ($5::timestamptz IS NULL OR ts < $5)
           ORDER BY ts DESC LIMIT $4) newest ORDER BY ts ASC`;
  }
  const { rows } = await pool.query<Row>(sql, params);
  return rows.map((r) => ({
    exchange: q.exchange,
    symbol: q.symbol,
    timeframe: q.timeframe,
    time: r.ts.toISOString(),
    timeMs: r.ts.getTime(),
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
    trades: r.trades,
    closed: true,
    gap: r.gap,
    revision: r.revision,
    source: r.source === 'source' ? 'SOURCE' : 'TRADES',
    incomplete: r.incomplete === true,
  }));
}
