/**
 * The desired symbols (`symbols` table): one implementation for GraphQL's `addSymbol` /
 * `setSymbolActive` and the `tickmesh symbols` command. The supervisor picks every change up
 * through NOTIFY (and its poll), so no process restarts.
 */
import type { Pool } from './db.ts';
import { UnknownExchangeError, UnknownSymbolError } from './errors.ts';
import { assertExchangeId, encodeSymbol } from './protocol/index.ts';

export interface SymbolRow {
  exchange: string;
  symbol: string;
  active: boolean;
}

export async function assertExchangeExists(pool: Pool, exchange: string): Promise<void> {
  assertExchangeId(exchange);
  const { rows } = await pool.query('SELECT 1 FROM exchanges WHERE id = $1', [exchange]);
  if (rows.length === 0) throw new UnknownExchangeError(exchange);
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
export async function addSymbol(pool: Pool, exchange: string, symbol: string): Promise<SymbolRow> {
  await assertExchangeExists(pool, exchange);
  encodeSymbol(symbol); // validates length and shape with a clear error
  const { rows } = await pool.query<SymbolRow>(
    `INSERT INTO symbols (exchange, symbol, active) VALUES ($1, $2, true)
     ON CONFLICT (exchange, symbol) DO UPDATE SET active = true, updated_at = now()
     RETURNING exchange, symbol, active`,
    [exchange, symbol],
  );
  return rows[0]!;
}

export async function setSymbolActive(
  pool: Pool,
  exchange: string,
  symbol: string,
  active: boolean,
): Promise<SymbolRow> {
  const { rows } = await pool.query<SymbolRow>(
    `UPDATE symbols SET active = $3, updated_at = now() WHERE exchange = $1 AND symbol = $2
     RETURNING exchange, symbol, active`,
    [exchange, symbol, active],
  );
  if (rows.length === 0) throw new UnknownSymbolError(exchange, symbol);
  return rows[0]!;
}

/** Throws UnknownSymbolError unless the symbol is in the desired set (active or not). */
export async function assertSymbolExists(pool: Pool, exchange: string, symbol: string): Promise<void> {
  const { rows } = await pool.query('SELECT 1 FROM symbols WHERE exchange = $1 AND symbol = $2', [
    exchange,
    symbol,
  ]);
  if (rows.length === 0) throw new UnknownSymbolError(exchange, symbol);
}
