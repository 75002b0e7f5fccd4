/** Reading candles and mapping bars to the GraphQL `Candle` shape. */
import type { Pool } from '../core/db.ts';
import { BadArgumentError, LimitExceededError, shownInput } from '../core/errors.ts';
import type { Bar, Timeframe } from '../core/protocol/index.ts';
import type { Candle, Indicators } from './generated/schema-types.ts';

/** The analytics' flat IndicatorValues (as stored and published) → the GraphQL shape. */
export function indicatorsOf(v: Record<string, number | null> | null | undefined): Indicators | null {
  if (!v) return null;
  const n = (k: string) => (typeof v[k] === 'number' ? (v[k] as number) : null);
  return {
    rsi14: n('rsi'),
    macd: { macd: n('macd'), signal: n('macdSignal'), histogram: n('macdHist') },
    bollinger: {
      upper: n('bbUpper'),
      middle: n('bbMiddle'),
      lower: n('bbLower'),
      width: n('bbWidth'),
      percentB: n('bbPb'),
    },
    sma20: n('sma20'),
    sma50: n('sma50'),
    sma100: n('sma100'),
    sma200: n('sma200'),
    ema12: n('ema12'),
    ema26: n('ema26'),
    ema50: n('ema50'),
    vwap: n('vwap'),
    stochastic: { k: n('stochK'), d: n('stochD') },
    atr14: n('atr'),
    adx: { adx: n('adx'), plusDI: n('pdi'), minusDI: n('mdi') },
    volumeSma20: n('volSma20'),
  };
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
    tradeReceivedMs: b.nt ?? null,
    gap: b.gap,
    revision: b.rev,
    source: b.src ? 'SOURCE' : 'TRADES',
    incomplete: b.inc === true,
    indicators: indicatorsOf(b.ind),
  };
}

/** The instants a time argument may name: years 0000 to 9999 (UTC). */
export const MIN_TIME_MS = -62_167_219_200_000; // 0000-01-01T00:00:00Z (Date.UTC maps year 0 to 1900)
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Accepts ISO-8601 or epoch milliseconds (as a string), years 0000–9999. */
export function parseTime(name: string, value: string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  const ms = /^-?\d+$/.test(value.trim()) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new BadArgumentError(name, `${shownInput(value)} is neither ISO-8601 nor epoch milliseconds`);
  if (ms < MIN_TIME_MS || ms > MAX_TIME_MS)
    throw new BadArgumentError(name, `${shownInput(value)} is outside the years 0000 to 9999`);
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
  ind: Record<string, number | null> | null;
}

export async function readCandles(pool: Pool, q: CandleQuery): Promise<Candle[]> {
  const cols =
    'ts, open, high, low, close, volume, trades, gap, revision, source, incomplete, i."values" AS ind';
  // Indicators of the same bar, by the same key (a primary-key lookup per row).
  const from = 'candles LEFT JOIN indicators i USING (exchange, symbol, timeframe, ts)';
  const where = 'exchange = $1 AND symbol = $2 AND timeframe = $3';
  const params: unknown[] = [q.exchange, q.symbol, q.timeframe, q.limit];
  let sql: string;
  if (q.from !== null) {
    params.push(new Date(q.from), q.to === null ? null : new Date(q.to));
    sql = `SELECT ${cols} FROM ${from} WHERE ${where} AND ts >= $5 AND ($6::timestamptz IS NULL OR ts < $6)
           ORDER BY ts ASC LIMIT $4`;
  } else {
    params.push(q.to === null ? null : new Date(q.to));
    sql = `SELECT * FROM (SELECT ${cols} FROM ${from} WHERE ${where} AND ($5::timestamptz IS NULL OR ts < $5)
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
    indicators: indicatorsOf(r.ind),
  }));
}
