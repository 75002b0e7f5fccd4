/**
 * Stored trades as a stream of batches, in timestamp order, for the replay exchange: from a
 * file (NDJSON, CSV, or a JSON array like freqtrade's recorded data, each optionally gzipped)
 * or from a PostgreSQL `trades` table. Files are read as streams, line by line or element by
 * element, so a 100 MB recording never sits in memory. A `ReplayPacer` releases the batches at
 * a chosen speed on the injected Clock.
 *
 * Formats (the file's extension picks one; `.gz` is decompressed first):
 * - `.ndjson` / `.jsonl`: one trade per line, as `{id, ts, px, qty, side?, symbol?}` (our Trade),
 *   a ccxt trade `{id, timestamp, price, amount, side, symbol}`, or a ccxt list row.
 * - `.csv`: a header names the columns (`id,ts,px,qty,side[,symbol]`, or ccxt/freqtrade's
 *   `timestamp,id,type,side,price,amount,cost`); without a header the columns are
 *   `id,ts,px,qty,side[,symbol]`. `ts` is epoch ms (values below 1e11 are taken as seconds) or
 *   an ISO-8601 time.
 * - `.json`: one JSON array of trades in any of the NDJSON shapes; the recorded
 *   `binance-XRP_ETH-trades-*.json.gz` holds ccxt list rows `[ts, id, type, side, price, amount, cost]`.
 * Candle files of the same recording (`[[openTimeMs, o, h, l, c, v], …]`) read with readCandleFile.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type Clock, sleep } from '../../core/clock.ts';
import type { Pool } from '../../core/db.ts';
import { ConfigError, TmError } from '../../core/errors.ts';
import {
  MAX_TRADES_PER_BATCH,
  type Side,
  type SourceBar,
  type Trade,
  tradeProblem,
} from '../../core/protocol/index.ts';

export interface ReplayBatch {
  symbol: string;
  /** Consecutive trades of one symbol, in timestamp order. */
  trades: Trade[];
}

export interface SymbolTrade {
  symbol: string;
  trade: Trade;
}

export interface BatchOptions {
  /** Most trades in one batch. Default 500. */
  batchMax?: number;
  /** A batch spans at most this much trade time. Default 1000 ms. */
  batchWindowMs?: number;
}

export interface FileSourceOptions extends BatchOptions {
  /** The symbol of trades whose rows carry none. */
  symbol?: string;
  /** Overrides the format the extension implies. */
  format?: 'ndjson' | 'csv' | 'json';
  /**
   * Called for a row that is not a valid trade, or that goes back in time for its symbol, and
   * the row is skipped. Without it such a row is a ReplayFormatError.
   */
  onInvalid?: (where: string, reason: string) => void;
}

export class ReplayFormatError extends TmError {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super('TM_ERR_VALIDATION', 400, `${where}: ${reason}`);
  }
}

// ---------------------------------------------------------------- batching

/** Groups a trade stream into batches: one symbol each, ≤ batchMax trades, ≤ batchWindowMs long. */
export async function* batchTrades(
  trades: AsyncIterable<SymbolTrade>,
  opts: BatchOptions = {},
): AsyncGenerator<ReplayBatch> {
  const max = Math.min(opts.batchMax ?? 500, MAX_TRADES_PER_BATCH);
  const window = opts.batchWindowMs ?? 1000;
  let batch: ReplayBatch | undefined;
  for await (const { symbol, trade } of trades) {
    if (
      batch &&
      (batch.symbol !== symbol || batch.trades.length >= max || trade.ts - batch.trades[0]!.ts >= window)
    ) {
      yield batch;
      batch = undefined;
    }
    if (!batch) batch = { symbol, trades: [] };
    batch.trades.push(trade);
  }
  if (batch) yield batch;
}

/** The batches of a trade file; see the module comment for the formats. */
export function replayFile(path: string, opts: FileSourceOptions = {}): AsyncGenerator<ReplayBatch> {
  return batchTrades(readTradeFile(path, opts), opts);
}

// ---------------------------------------------------------------- files

function openText(path: string): Readable {
  const raw = createReadStream(path);
  const stream = path.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  // A failed read (missing file) must reach the consumer, not an unhandled 'error'.
  if (stream !== raw) raw.on('error', (e) => stream.destroy(e));
  stream.setEncoding('utf8');
  return stream;
}

function formatOf(path: string): 'ndjson' | 'csv' | 'json' {
  const name = path.replace(/\.gz$/, '');
  if (/\.(ndjson|jsonl)$/.test(name)) return 'ndjson';
  if (name.endsWith('.csv')) return 'csv';
  if (name.endsWith('.json')) return 'json';
  throw new ConfigError(
    `${path}: unknown trade file format (.ndjson, .jsonl, .csv or .json, optionally .gz)`,
  );
}

/** Every trade of a file with its symbol, validated, in file order. */
export async function* readTradeFile(
  path: string,
  opts: FileSourceOptions = {},
): AsyncGenerator<SymbolTrade> {
  const format = opts.format ?? formatOf(path);
  const lastTs = new Map<string, number>();
  const problemOf = (parsed: { symbol?: string; trade: unknown } | string): string | SymbolTrade => {
    if (typeof parsed === 'string') return parsed;
    const symbol = parsed.symbol ?? opts.symbol;
    if (!symbol) return 'no symbol in the row and no `symbol` option';
    const problem = tradeProblem(parsed.trade);
    if (problem) return problem;
    const trade = parsed.trade as Trade;
    if (trade.ts < (lastTs.get(symbol) ?? Number.NEGATIVE_INFINITY))
      return `ts ${trade.ts} goes back in time for ${symbol}`;
    return { symbol, trade };
  };
  const accept = (
    where: string,
    parsed: { symbol?: string; trade: unknown } | string,
  ): SymbolTrade | null => {
    const out = problemOf(parsed);
    if (typeof out === 'string') {
      if (!opts.onInvalid) throw new ReplayFormatError(where, out);
      opts.onInvalid(where, out);
      return null;
    }
    lastTs.set(out.symbol, out.trade.ts);
    return out;
  };

  if (format === 'json') {
    let n = 0;
    for await (const text of jsonArrayElements(openText(path))) {
      n++;
      const out = accept(`${path} element ${n}`, parseJsonTrade(text));
      if (out) yield out;
    }
    return;
  }
  const lines = createInterface({ input: openText(path), crlfDelay: Number.POSITIVE_INFINITY });
  let columns: string[] | undefined;
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    const where = `${path}:${n}`;
    if (format === 'ndjson') {
      const out = accept(where, parseJsonTrade(line));
      if (out) yield out;
      continue;
    }
    const fields = splitCsv(line);
    if (!columns) {
      const named = fields.map((f) => CSV_ALIASES[f.trim().toLowerCase()]);
      if (named.some((c) => c !== undefined)) {
        columns = fields.map((f, i) => named[i] ?? `_${f}`);
        continue;
      }
      columns = ['id', 'ts', 'px', 'qty', 'side', 'symbol'];
    }
    const out = accept(where, csvTrade(columns, fields));
    if (out) yield out;
  }
}

/** 1m (or any) candles of a JSON array file of `[openTimeMs, open, high, low, close, volume]` rows. */
export async function* readCandleFile(path: string): AsyncGenerator<SourceBar> {
  let n = 0;
  for await (const text of jsonArrayElements(openText(path))) {
    n++;
    const row = JSON.parse(text) as unknown;
    if (!Array.isArray(row) || row.length < 6 || !row.slice(0, 6).every((x) => typeof x === 'number'))
      throw new ReplayFormatError(`${path} element ${n}`, 'not a [t, o, h, l, c, v] row');
    const [t, o, h, l, c, vol] = row as number[];
    yield { t: t!, o: o!, h: h!, l: l!, c: c!, vol: vol! };
  }
}

/**
 * The top-level elements of a JSON array, as text, read incrementally: only the element being
 * read is held, whatever the size of the array.
 */
export async function* jsonArrayElements(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let done = false;
  let pending = '';
  for await (const chunk of chunks) {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === '\\') escaped = true;
        else if (ch === '"') inString = false;
        continue;
      }
      if (depth === 0) {
        if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t' || ch === '\ufeff') continue;
        if (ch !== '[' || done)
          throw new ReplayFormatError('JSON', `expected one top-level array, found '${ch}'`);
        depth = 1;
        from = i + 1;
        continue;
      }
      if (ch === '"') inString = true;
      else if (ch === '[' || ch === '{') depth++;
      else if (ch === ']' || ch === '}') {
        depth--;
        if (depth === 0) {
          const last = (pending + chunk.slice(from, i)).trim();
          pending = '';
          if (last !== '') yield last;
          done = true;
        }
      } else if (ch === ',' && depth === 1) {
        const element = (pending + chunk.slice(from, i)).trim();
        pending = '';
        from = i + 1;
        if (element === '') throw new ReplayFormatError('JSON', 'empty array element');
        yield element;
      }
    }
    if (depth > 0) pending += chunk.slice(from);
  }
  if (depth > 0 || inString) throw new ReplayFormatError('JSON', 'the array is cut off');
  if (!done) throw new ReplayFormatError('JSON', 'no top-level array');
}

// ---------------------------------------------------------------- rows → trades

const toSide = (x: unknown): Side | undefined => {
  const s = typeof x === 'string' ? x.trim().toLowerCase() : '';
  if (s === 'buy' || s === 'b') return 'buy';
  if (s === 'sell' || s === 's') return 'sell';
  return undefined;
};

/** Epoch ms from epoch ms, epoch seconds (< 1e11) or an ISO-8601 string. */
function toTs(x: unknown): number {
  if (typeof x === 'number') return x < 1e11 ? Math.round(x * 1000) : x;
  if (typeof x !== 'string' || x.trim() === '') return Number.NaN;
  const s = x.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return toTs(Number(s));
  return Date.parse(s);
}

const toNum = (x: unknown): number =>
  typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : Number.NaN;

function tradeOf(
  id: unknown,
  ts: unknown,
  px: unknown,
  qty: unknown,
  side: unknown,
): Record<string, unknown> {
  const t: Record<string, unknown> = {
    id: typeof id === 'number' ? String(id) : id,
    ts: toTs(ts),
    px: toNum(px),
    qty: toNum(qty),
  };
  const s = toSide(side);
  if (s) t.side = s;
  return t;
}

/** One JSON trade in any supported shape, or why not. */
function parseJsonTrade(text: string): { symbol?: string; trade: unknown } | string {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (Array.isArray(x)) {
    // ccxt / freqtrade list row: [timestamp, id, type, side, price, amount, cost]
    if (x.length < 6) return 'a list row needs [timestamp, id, type, side, price, amount]';
    return { trade: tradeOf(x[1], x[0], x[4], x[5], x[3]) };
  }
  if (typeof x !== 'object' || x === null) return 'not a trade object';
  const o = x as Record<string, unknown>;
  const symbol = typeof o.symbol === 'string' ? o.symbol : typeof o.sym === 'string' ? o.sym : undefined;
  const trade =
    'px' in o || 'ts' in o
      ? tradeOf(o.id, o.ts, o.px, o.qty, o.side)
      : tradeOf(o.id, o.timestamp, o.price, o.amount, o.side);
  return symbol ? { symbol, trade } : { trade };
}

const CSV_ALIASES: Record<string, string> = {
  id: 'id',
  trade_id: 'id',
  tradeid: 'id',
  ts: 'ts',
  timestamp: 'ts',
  time: 'ts',
  date: 'ts',
  px: 'px',
  price: 'px',
  qty: 'qty',
  amount: 'qty',
  size: 'qty',
  quantity: 'qty',
  side: 'side',
  symbol: 'symbol',
  sym: 'symbol',
  pair: 'symbol',
};

function csvTrade(columns: string[], fields: string[]): { symbol?: string; trade: unknown } | string {
  const get = (name: string) => {
    const i = columns.indexOf(name);
    return i >= 0 ? fields[i] : undefined;
  };
  if (fields.length < 4) return `expected at least 4 columns, found ${fields.length}`;
  const trade = tradeOf(get('id')?.trim(), get('ts'), get('px'), get('qty'), get('side'));
  const symbol = get('symbol')?.trim();
  return symbol ? { symbol, trade } : { trade };
}

/** Splits one CSV line; double-quoted fields may hold commas and doubled quotes. */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

// ---------------------------------------------------------------- database

/**
 * The table replayFromDb reads. No migration creates it yet: the live pipeline keeps trades in
 * JetStream; a deployment that archives them into PostgreSQL gives them this shape.
 */
export const TRADES_TABLE_DDL = `CREATE TABLE trades (
  exchange text NOT NULL,
  symbol   text NOT NULL,
  id       text NOT NULL,
  ts       timestamptz NOT NULL,
  px       double precision NOT NULL CHECK (px > 0),
  qty      double precision NOT NULL CHECK (qty >= 0),
  side     text CHECK (side IN ('buy', 'sell')),
  PRIMARY KEY (exchange, symbol, ts, id)
)`;

interface TradeRow {
  id: string;
  /** bigint: a string unless the pool parses int8. */
  ts: string | number;
  px: number;
  qty: number;
  side: string | null;
}

const PAGE_SQL = `SELECT id, (extract(epoch FROM ts) * 1000)::bigint AS ts, px, qty, side
FROM trades
WHERE exchange = $1 AND symbol = $2
  AND ts >= to_timestamp($3::double precision / 1000) AND ts < to_timestamp($4::double precision / 1000)
  AND ($5::bigint IS NULL OR (ts, id) > (to_timestamp($5::double precision / 1000), $6::text))
ORDER BY ts, id
LIMIT $7`;

/**
 * Trades of one series with from ≤ ts < to (epoch ms), in (ts, id) order, read page by page
 * with a keyset cursor (no long-lived transaction or server-side cursor).
 */
export async function* readTradesFromDb(
  pool: Pool,
  exchange: string,
  symbol: string,
  from: number,
  to: number,
  opts: { pageSize?: number } = {},
): AsyncGenerator<SymbolTrade> {
  const exists = await pool.query<{ t: string | null }>(`SELECT to_regclass('trades')::text AS t`);
  if (!exists.rows[0]?.t)
    throw new ConfigError(`there is no trades table; replayFromDb expects:\n${TRADES_TABLE_DDL}`);
  const pageSize = opts.pageSize ?? 5000;
  let after: { ts: number; id: string } | null = null;
  for (;;) {
    const page: { rows: TradeRow[] } = await pool.query<TradeRow>(PAGE_SQL, [
      exchange,
      symbol,
      from,
      to,
      after?.ts ?? null,
      after?.id ?? null,
      pageSize,
    ]);
    for (const r of page.rows) {
      const trade: Trade = { id: r.id, ts: Number(r.ts), px: Number(r.px), qty: Number(r.qty) };
      const side = toSide(r.side);
      if (side) trade.side = side;
      yield { symbol, trade };
    }
    if (page.rows.length < pageSize) return;
    const last: TradeRow = page.rows.at(-1)!;
    after = { ts: Number(last.ts), id: last.id };
  }
}

/** The batches of one series from the `trades` table (see TRADES_TABLE_DDL). */
export function replayFromDb(
  pool: Pool,
  exchange: string,
  symbol: string,
  from: number,
  to: number,
  opts: BatchOptions & { pageSize?: number } = {},
): AsyncGenerator<ReplayBatch> {
  return batchTrades(readTradesFromDb(pool, exchange, symbol, from, to, opts), opts);
}

// ---------------------------------------------------------------- pacing

/**
 * Releases batches so that trade time advances `speed` times faster than the clock: 1 = real
 * time, 60 = a minute per second, Infinity = as fast as the consumer takes them. A batch is due
 * when its last trade has "happened"; due times are anchored at the first batch, so a slow
 * consumer catches up instead of drifting (`behindMs` says by how much it is late).
 */
export class ReplayPacer {
  /** How late the last batch was released against its due time (0 when on time). */
  behindMs = 0;

  constructor(
    private readonly clock: Clock,
    readonly speed: number,
  ) {
    if (!(speed > 0)) throw new ConfigError(`replay speed must be > 0, got ${speed}`);
  }

  async *pace<T extends { trades: readonly Trade[] }>(
    batches: AsyncIterable<T>,
    signal?: AbortSignal,
  ): AsyncGenerator<T> {
    let anchor: { wall: number; ts: number } | undefined;
    for await (const batch of batches) {
      if (signal?.aborted) return;
      const ts = batch.trades.at(-1)?.ts;
      if (ts !== undefined && Number.isFinite(this.speed)) {
        if (!anchor) anchor = { wall: this.clock.now(), ts };
        const due = anchor.wall + (ts - anchor.ts) / this.speed;
        const wait = due - this.clock.now();
        if (wait > 0) {
          await this.sleep(wait, signal);
          if (signal?.aborted) return;
        }
        this.behindMs = Math.max(0, this.clock.now() - due);
      }
      yield batch;
    }
  }

  private sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleep(this.clock, ms, signal);
  }
}
