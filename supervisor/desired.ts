/** The desired actor set, derived from the `exchanges` and `symbols` tables. */
import type { Config } from '../core/config.ts';
import { inTransaction, type Pool } from '../core/db.ts';
import { InvalidSymbolError } from '../core/errors.ts';
import {
  type ActorSpec,
  actorIds,
  type ExchangeActorSpec,
  type ExchangeKind,
} from '../core/protocol/index.ts';

/** Exchange kinds that have an exchange-actor adapter in this version. */
const ADAPTERS: ReadonlySet<ExchangeKind> = new Set(['sim', 'ccxt', 'yahoo', 'replay']);

interface Row {
  exchange: string;
  kind: ExchangeKind;
  options: Record<string, unknown>;
  symbol: string;
}

/**
 * The desired actors. A stored symbol whose token cannot be built (one stored before the symbol
 * grammar, too long for a NATS consumer name) gets no actor, so it cannot crash-loop; it is
 * reported through `onUnusable` and can still be deactivated or removed.
 */
export async function loadDesired(
  pool: Pool,
  cfg: Config,
  onUnusable: (exchange: string, symbol: string, reason: string) => void = () => {},
): Promise<ActorSpec[]> {
  const { rows } = await pool.query<Row>(
    `SELECT s.exchange, e.kind, e.options, s.symbol
       FROM symbols s JOIN exchanges e ON e.id = s.exchange
      WHERE s.active AND e.enabled
      ORDER BY s.exchange, s.symbol`,
  );
  const specs: ActorSpec[] = [
    { id: actorIds.writer(), kind: 'writer' },
    { id: actorIds.alertDispatcher(), kind: 'alerts' },
  ];
  const byExchange = new Map<
    string,
    { kind: ExchangeKind; options: Record<string, unknown>; symbols: string[] }
  >();
  for (const r of rows) {
    let id: string;
    try {
      id = actorIds.symbol(r.exchange, r.symbol);
    } catch (e) {
      if (!(e instanceof InvalidSymbolError)) throw e;
      onUnusable(r.exchange, r.symbol, e.message);
      continue;
    }
    specs.push({
      id,
      kind: 'symbol',
      exchange: r.exchange,
      symbol: r.symbol,
      exchangeKind: r.kind,
    });
    const ex = byExchange.get(r.exchange) ?? { kind: r.kind, options: r.options, symbols: [] };
    ex.symbols.push(r.symbol);
    byExchange.set(r.exchange, ex);
  }
  for (const [exchange, { kind, options, symbols }] of byExchange) {
    if (!ADAPTERS.has(kind) || (kind === 'sim' && !cfg.sim.enabled)) continue;
    // Options change → spec changes → the worker restarts the actor with them (no process restart).
    const spec: ExchangeActorSpec = {
      id: actorIds.exchange(exchange),
      kind: 'exchange',
      exchange,
      exchangeKind: kind,
      symbols,
      ...(Object.keys(options ?? {}).length > 0 ? { options } : {}),
    };
    specs.push(spec);
  }
  return specs;
}

/** On the very first start (no exchanges at all), registers the simulator and its symbols. */
export async function seedSimulator(pool: Pool, cfg: Config): Promise<boolean> {
  if (!cfg.sim.enabled) return false;
  return inTransaction(pool, async (client) => {
    await client.query('LOCK TABLE exchanges IN SHARE ROW EXCLUSIVE MODE');
    const { rows } = await client.query('SELECT 1 FROM exchanges LIMIT 1');
    if (rows.length > 0) return false; // committing nothing releases the lock like a rollback
    await client.query(`INSERT INTO exchanges (id, name, kind) VALUES ('sim', 'Simulator', 'sim')`);
    await client.query(`INSERT INTO symbols (exchange, symbol) SELECT 'sim', unnest($1::text[])`, [
      cfg.sim.symbols,
    ]);
    return true;
  });
}
