/**
 * A running tickmesh for integration tests: private nats-server, fresh database, one external
 * exchange with its symbols, and the roles asked for (in this process). `stop()` undoes it all.
 */
import type { ExchangeAdapters } from '../../actors/factory.ts';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../../core/config.ts';
import type { Pool } from '../../core/db.ts';
import {
  type RoleHandle,
  startGatewayRole,
  startMetricsServer,
  startSupervisorRole,
  startWorkerRole,
} from '../../launcher/roles.ts';
import {
  freshDatabase,
  startTestNats,
  type TestDb,
  type TestNats,
  testConfig,
  testLog,
  topology,
} from './infra.ts';

export interface SystemOptions {
  /** An exchange of kind `external` (trades published by the test) and its symbols. */
  exchange?: { id: string; symbols: string[] };
  /** Config overrides on top of testConfig(). */
  config?: Record<string, unknown>;
  roles?: ('supervisor' | 'worker' | 'gateway')[];
  clock?: Clock;
  /** Runs after the database exists and before any role starts (seed rows, …). */
  beforeRoles?: (pool: Pool) => Promise<void>;
  /** Exchange clients of the worker's exchange actors (fakes). */
  adapters?: ExchangeAdapters;
}

export interface TestSystem {
  nats: TestNats;
  db: TestDb;
  cfg: Config;
  /** Gateway base URL (empty without a gateway). */
  base: string;
  /** Base URL of this process's metrics listener (`/metrics`), started with the gateway. */
  metrics: string;
  stop(): Promise<void>;
}

export async function startSystem(o: SystemOptions = {}): Promise<TestSystem> {
  const nats = await startTestNats();
  const db = await freshDatabase();
  const cfg = testConfig(nats, db, o.config);
  const roles: RoleHandle[] = [];
  const stop = async () => {
    for (const r of roles.reverse()) await r.stop();
    await db[Symbol.asyncDispose]();
    await nats[Symbol.asyncDispose]();
  };
  try {
    if (o.exchange) {
      await db.pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ($1, $1, 'external')`, [
        o.exchange.id,
      ]);
      await db.pool.query(`INSERT INTO symbols (exchange, symbol) SELECT $1, unnest($2::text[])`, [
        o.exchange.id,
        o.exchange.symbols,
      ]);
    }
    await o.beforeRoles?.(db.pool);
    // Streams and buckets exist before any role starts, whatever the order: with authorization
    // on, only the supervisor (and the operator) may create them.
    await (await topology(cfg, 'test-setup'))[Symbol.asyncDispose]();
    let base = '';
    let metrics = '';
    for (const role of o.roles ?? ['supervisor', 'worker', 'gateway']) {
      if (role === 'supervisor') roles.push(await startSupervisorRole(cfg, testLog, o.clock));
      if (role === 'worker') roles.push(await startWorkerRole(cfg, testLog, o.clock, 'w1', o.adapters));
      if (role === 'gateway') {
        // As `tickmesh gateway` runs: /metrics on a listener of its own, not the public port.
        const m = await startMetricsServer(0, '127.0.0.1');
        roles.push(m);
        metrics = m.url;
        const gw = await startGatewayRole(cfg, testLog);
        roles.push(gw);
        base = gw.url;
      }
    }
    return { nats, db, cfg, base, metrics, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export { storedBars } from './bars.ts';
