/**
 * `dev`: the whole system in one process. Starts a nats-server child and an embedded
 * PostgreSQL when NATS_URL / DATABASE_URL are not set, migrates, then runs the gateway, the
 * supervisor and a worker, and shuts everything down in order on Ctrl-C. A set-up it cannot
 * start in (a port taken, a URL that answers nothing) fails first, before anything runs.
 * It binds 127.0.0.1 unless HOST is set; /metrics is on its own listener (METRICS_PORT, 127.0.0.1).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../core/config.ts';
import { createPool } from '../core/db.ts';
import { StartupError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { enableDefaultMetrics } from '../core/metrics.ts';
import { type NatsCredential, natsCredential } from '../core/nats.ts';
import { ensureFirstAdmin } from './auth-setup.ts';
import { type DevSecrets, devSecrets } from './dev-secrets.ts';
import { type EmbeddedNats, startNatsServer } from './embedded-nats.ts';
import { type EmbeddedDb, startEmbeddedPostgres } from './embedded-postgres.ts';
import { checkDatabaseUrl, checkGatewayPort, checkNatsUrl, gatewayPortTaken } from './preflight.ts';
import { errnoOf } from './processes.ts';
import {
  type RoleHandle,
  runMigrate,
  startGatewayRole,
  startMetricsServer,
  startSupervisorRole,
  startWorkerRole,
} from './roles.ts';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface DevSystem {
  gatewayUrl: string;
  /** The process's /metrics listener (127.0.0.1, METRICS_PORT). */
  metricsUrl: string;
  natsUrl: string;
  /** The operator's NATS credential (for the NATS CLI), when one is known. */
  natsOperator: NatsCredential | undefined;
  databaseUrl: string;
  /** The embedded PostgreSQL's cluster folder (null with DATABASE_URL). */
  databaseDir: string | null;
  /** The first admin's generated password and its file (null with TICKMESH_ADMIN_PASSWORD). */
  generatedAdmin: DevSecrets['generatedAdmin'];
  stop(): Promise<void>;
}

/**
 * Creates the generated first admin unless that user exists (a changed password stays); the
 * admin as the banner may show it: null when the generated password no longer signs in.
 */
async function firstAdmin(
  databaseUrl: string,
  admin: NonNullable<DevSecrets['generatedAdmin']>,
): Promise<DevSecrets['generatedAdmin']> {
  const pool = createPool(databaseUrl, 1);
  try {
    return (await ensureFirstAdmin(pool, admin.user, admin.password)) ? admin : null;
  } finally {
    await pool.end();
  }
}

export async function startDev(
  processEnv: NodeJS.ProcessEnv = process.env,
  log?: Logger,
): Promise<DevSystem> {
  const dataDir = processEnv.TICKMESH_DATA_DIR || join(PROJECT_ROOT, '.data');
  const base = loadConfig(processEnv);
  const logger = log ?? createLogger(base.logLevel, { app: 'tickmesh' });
  enableDefaultMetrics();
  let nats: EmbeddedNats | null = null;
  let db: EmbeddedDb | null = null;
  const roles: RoleHandle[] = [];
  const stop = async () => {
    for (const r of roles.reverse())
      await r.stop().catch((err) => logger.error({ err, role: r.name }, 'stop failed'));
    await db?.stop().catch((err) => logger.error({ err }, 'stopping embedded postgres failed'));
    await nats?.stop().catch((err) => logger.error({ err }, 'stopping nats-server failed'));
  };
  // A laptop's dev system is not for the network: loopback unless HOST says otherwise.
  const host = processEnv.HOST ? base.gateway.host : '127.0.0.1';
  await checkGatewayPort(base.gateway.port, host);
  if (base.nats.url) await checkNatsUrl(base.nats.url, natsCredential(base, 'supervisor'));
  if (base.database.url) await checkDatabaseUrl(base.database.url);
  // Only a set-up that can start writes anything into the data folder.
  const secrets = devSecrets(dataDir, processEnv);
  const env = { ...processEnv, ...secrets.env };
  try {
    if (!base.nats.url) nats = await startNatsServer(join(dataDir, 'nats'), logger);
    if (!base.database.url) db = await startEmbeddedPostgres(join(dataDir, 'postgres'), logger);
    const cfg = loadConfig(env, {
      // The embedded server's users and passwords (made in its folder, kept across restarts).
      nats: nats ? { url: nats.url, passwords: nats.passwords } : {},
      database: { url: base.database.url ?? db!.url },
      // One stable worker id in dev, so a restarted process picks its actors up at once.
      worker: { id: base.worker.id ?? 'dev' },
      // Tools (GraphiQL, codegen) may ask the schema of a dev gateway.
      gateway: { host, limits: { introspection: true } },
    });
    await runMigrate(cfg, logger);
    const generatedAdmin =
      secrets.generatedAdmin && (await firstAdmin(cfg.database.url!, secrets.generatedAdmin));
    const metricsServer = await startMetricsServer(cfg.metricsPort, '127.0.0.1').catch((e) => {
      throw errnoOf(e) === 'EADDRINUSE'
        ? new StartupError(
            'metrics',
            `port ${cfg.metricsPort} on 127.0.0.1 is already in use`,
            'set METRICS_PORT to a free port (METRICS_PORT=0 picks one)',
            { cause: e },
          )
        : e;
    });
    roles.push(metricsServer);
    // Order matters for shutdown (reverse): the worker flushes before the supervisor leaves.
    const supervisor = await startSupervisorRole(cfg, logger);
    roles.push(supervisor);
    roles.push(await startWorkerRole(cfg, logger));
    const gateway = await startGatewayRole(cfg, logger).catch((e) => {
      // Taken since the check above: the same line as when it was taken before.
      throw errnoOf(e) === 'EADDRINUSE' ? gatewayPortTaken(cfg.gateway.port, cfg.gateway.host, e) : e;
    });
    roles.push(gateway);
    return {
      gatewayUrl: gateway.url,
      metricsUrl: metricsServer.url,
      natsUrl: cfg.nats.url!,
      natsOperator: natsCredential(cfg, 'operator'),
      databaseUrl: cfg.database.url!,
      databaseDir: db?.dataDir ?? null,
      generatedAdmin,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The NATS CLI with the operator's credential, ready to paste (shell-quoted): what the start-up
 * banner prints, so `stream ls`, `micro ls` or a restart request work against the embedded server.
 */
export function natsCliCommand(url: string, operator: NatsCredential | undefined): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  return operator
    ? `nats --server ${url} --user ${q(operator.user)} --password ${q(operator.pass)}`
    : `nats --server ${url}`;
}
