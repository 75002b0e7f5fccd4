/**
 * The desired symbols (`symbols` table): one implementation for GraphQL's `addSymbol` /
 * `setSymbolActive` / `removeSymbol` and the `tickmesh symbols` command. The supervisor picks
 * every change up through NOTIFY (and its poll), so no process restarts; it also deletes the
 * durable consumer of a symbol that is no longer active (supervisor/consumer-release.ts).
 *
 * What enters the active set passes the symbol grammar (`parseSymbol`) and the per-exchange
 * quota, counted under a lock on the exchange's row so concurrent additions cannot overshoot it.
 * Deactivating and removing take any stored symbol (one stored before the grammar included).
 */
import type pg from 'pg';
import { inTransaction, type Pool } from './db.ts';
import {
  InvalidSymbolError,
  LimitExceededError,
  shownInput,
  UnknownExchangeError,
  UnknownSymbolError,
} from './errors.ts';
import { assertExchangeId, MAX_SYMBOL_LENGTH, parseSymbol } from './protocol/index.ts';

export interface SymbolRow {
  exchange: string;
  symbol: string;
  active: boolean;
}

/** How many symbols one exchange may have active (config `symbols.maxActivePerExchange`). */
export interface SymbolQuota {
  maxActivePerExchange: number;
}

export async function assertExchangeExists(pool: Pool | pg.PoolClient, exchange: string): Promise<void> {
  assertExchangeId(exchange);
  const { rows } = await pool.query('SELECT 1 FROM exchanges WHERE id = $1', [exchange]);
  if (rows.length === 0) throw new UnknownExchangeError(exchange);
}

/** A stored symbol named by a caller: only bounded (it is looked up, never created). */
function storedSymbol(symbol: string): string {
  if (symbol.length === 0 || symbol.length > MAX_SYMBOL_LENGTH)
    throw new InvalidSymbolError(symbol, `length must be 1..${MAX_SYMBOL_LENGTH}`);
  return symbol;
}

/**
 * Locks the exchange's row for the transaction (concurrent quota checks of one exchange queue
 * behind it) and refuses a new active symbol when the exchange already has its quota.
 */
async function assertRoomFor(
  client: pg.PoolClient,
  exchange: string,
  symbol: string,
  quota: SymbolQuota,
): Promise<void> {
  const locked = await client.query('SELECT 1 FROM exchanges WHERE id = $1 FOR UPDATE', [exchange]);
  if (locked.rows.length === 0) throw new UnknownExchangeError(exchange);
  const { rows } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM symbols WHERE exchange = $1 AND active AND symbol <> $2',
    [exchange, symbol],
  );
  const n = rows[0]!.n;
  if (n >= quota.maxActivePerExchange)
    throw new LimitExceededError(
      `active symbols on exchange ${shownInput(exchange)} (${n} now, one more asked)`,
      quota.maxActivePerExchange,
    );
}

export async function listSymbols(
  pool: Pool,
  filter: { exchange?: string | null; active?: boolean | null } = {},
): Promise<SymbolRow[]> {
  const { rows } = await pool.query<SymbolRow>(
    `SELECT exchange, symbol, active FROM symbols
      WHERE ($1::text IS NULL OR exchange = $1) AND ($2::boolean IS NULL OR active = $2)
      ORDER BY exchange, symbol`,
    [filter.exchange ?? null, filter.active ?? null],
  );
  return rows;
}

/** Adds the symbol, or reactivates it. */
export async function addSymbol(
  pool: Pool,
  exchange: string,
  symbol: string,
  quota: SymbolQuota,
): Promise<SymbolRow> {
  assertExchangeId(exchange);
  parseSymbol(symbol);
  return inTransaction(pool, async (client) => {
    await assertRoomFor(client, exchange, symbol, quota);
    const { rows } = await client.query<SymbolRow>(
      `INSERT INTO symbols (exchange, symbol, active) VALUES ($1, $2, true)
       ON CONFLICT (exchange, symbol) DO UPDATE SET active = true, updated_at = now()
       RETURNING exchange, symbol, active`,
      [exchange, symbol],
    );
    return rows[0]!;
  });
}

/**
 * Activates (grammar and quota checked) or deactivates a stored symbol. Deactivation stops its
 * actors and releases its durable consumer; its bars, rules and resume snapshot stay.
 */
export async function setSymbolActive(
  pool: Pool,
  exchange: string,
  symbol: string,
  active: boolean,
  quota: SymbolQuota,
): Promise<SymbolRow> {
  assertExchangeId(exchange);
  if (active) parseSymbol(symbol);
  else storedSymbol(symbol);
  return inTransaction(pool, async (client) => {
    if (active) await assertRoomFor(client, exchange, symbol, quota);
    const { rows } = await client.query<SymbolRow>(
      `UPDATE symbols SET active = $3, updated_at = now() WHERE exchange = $1 AND symbol = $2
       RETURNING exchange, symbol, active`,
      [exchange, symbol, active],
    );
    if (rows.length === 0) throw new UnknownSymbolError(exchange, symbol);
    return rows[0]!;
  });
}

/**
 * Removes the symbol from the desired set: its actors stop, the supervisor deletes its durable
 * consumer, and its alert rules go with it (foreign key). Stored bars, indicators and features
 * stay until retention drops them, as does its resume snapshot, so adding it again continues
 * where it stopped. True when it was there; removing it again is a no-op (false).
 */
export async function removeSymbol(pool: Pool, exchange: string, symbol: string): Promise<boolean> {
  assertExchangeId(exchange);
  storedSymbol(symbol);
  const { rowCount } = await pool.query('DELETE FROM symbols WHERE exchange = $1 AND symbol = $2', [
    exchange,
    symbol,
  ]);
  return (rowCount ?? 0) > 0;
}

/** Throws UnknownSymbolError unless the symbol is in the desired set (active or not). */
export async function assertSymbolExists(pool: Pool, exchange: string, symbol: string): Promise<void> {
  const { rows } = await pool.query('SELECT 1 FROM symbols WHERE exchange = $1 AND symbol = $2', [
    exchange,
    symbol,
  ]);
  if (rows.length === 0) throw new UnknownSymbolError(exchange, symbol);
}
