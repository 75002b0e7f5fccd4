/**
 * Runs a `nats-server` child with JetStream on a project data folder (dev mode only).
 * Readiness comes from its ports file; a pid file guards against two servers on one store.
 * Every way it can fail to start ends in one EmbeddedServerError that says how to fix it.
 * Authorization is always on: the users, their permissions and their passwords are generated in
 * the folder (launcher/nats-auth.ts), so an anonymous client is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedServerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { ensurePasswords, type NatsPasswords, writeServerConfig } from './nats-auth.ts';
import { clearStalePidFile, dismiss, errnoOf, freePort, removeLeftover, watchdog } from './processes.ts';

export interface EmbeddedNats {
  url: string;
  port: number;
  /** Passwords of the server's users (one per principal), kept in its folder. */
  passwords: NatsPasswords;
  stop(): Promise<void>;
}

const SERVER = 'nats-server';
const READY_TIMEOUT_MS = 10_000;

/** Why the binary could not be run, and what to do about it. */
function spawnFailure(bin: string, fromEnv: boolean, e: Error): EmbeddedServerError {
  const code = errnoOf(e);
  const elsewhere = 'or set NATS_URL to a running server';
  if (code === 'ENOENT' && fromEnv)
    return new EmbeddedServerError(
      SERVER,
      `NATS_SERVER_BIN=${bin} does not exist`,
      `point it at a nats-server binary, unset it to use the one on PATH, ${elsewhere}`,
      { cause: e },
    );
  if (code === 'ENOENT')
    return new EmbeddedServerError(
      SERVER,
      'not found on PATH',
      `install it (Debian: apt-get install nats-server; or https://github.com/nats-io/nats-server/releases), set NATS_SERVER_BIN to its path, ${elsewhere}`,
      { cause: e },
    );
  return new EmbeddedServerError(
    SERVER,
    `cannot run ${bin} (${code ?? e.message})`,
    `check that it is an executable nats-server (chmod +x), ${elsewhere}`,
    { cause: e },
  );
}

/** The fix for what the server printed before it gave up. */
function exitFailure(port: number, dir: string, errors: string[]): EmbeddedServerError {
  const said = errors.join(' | ').replace(/\s+/g, ' ') || 'it printed nothing';
  if (/address already in use/i.test(said))
    return new EmbeddedServerError(
      SERVER,
      `port ${port} is taken (${said})`,
      'stop what listens there and start again',
    );
  if (/permission denied|read-only/i.test(said))
    return new EmbeddedServerError(
      SERVER,
      `cannot use its store in ${dir} (${said})`,
      'make the folder writable for this user, or set TICKMESH_DATA_DIR to one that is',
    );
  return new EmbeddedServerError(
    SERVER,
    `did not become ready (${said})`,
    'run it by hand with the same flags to see why, or set NATS_URL to a running server',
  );
}

/** Removes what an earlier run left behind: its pid file (stopping its server) and ports files. */
async function clearLeftovers(dir: string, pidFile: string, log: Logger): Promise<void> {
  await clearStalePidFile(SERVER, pidFile, join(dir, 'store'), log);
  for (const f of readdirSync(dir)) if (f.endsWith('.ports')) removeLeftover(SERVER, join(dir, f));
}

export async function startNatsServer(dir: string, log: Logger, preferredPort = 4223): Promise<EmbeddedNats> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new EmbeddedServerError(
      SERVER,
      `cannot create its folder ${dir} (${errnoOf(e) ?? e})`,
      'make the parent writable, or set TICKMESH_DATA_DIR to a folder you can write',
      { cause: e },
    );
  }
  const pidFile = join(dir, 'nats-server.pid');
  await clearLeftovers(dir, pidFile, log);
  const port = await freePort(preferredPort);
  const bin = process.env.NATS_SERVER_BIN || 'nats-server';
  const passwords = ensurePasswords(dir);
  const config = writeServerConfig(dir, passwords);
  const args = ['-c', config, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store')];
  const child: ChildProcess = spawn(bin, [...args, '-P', pidFile, '--ports_file_dir', dir], {
    // A process group of its own: Ctrl-C in the terminal signals the whole foreground group,
    // and the server must outlive the roles' graceful stop (dev stops it last).
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  const errors: string[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (/\[(ERR|FTL)\]/.test(line)) errors.push(line.trim());
  });
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (spawned) throw spawnFailure(bin, Boolean(process.env.NATS_SERVER_BIN), spawned);
  child.on('error', (err) => log.warn({ err }, 'nats-server child'));
  const dog = watchdog(child.pid!);
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  const portsFile = join(dir, `nats-server_${child.pid}.ports`);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!existsSync(portsFile)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      dismiss(dog);
      child.kill('SIGKILL');
      await exited; // its stderr is complete once it has closed
      throw exitFailure(port, dir, errors);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = `nats://127.0.0.1:${port}`;
  log.info({ url, store: join(dir, 'store') }, 'embedded nats-server started');
  return {
    url,
    port,
    passwords,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      dismiss(dog);
      rmSync(pidFile, { force: true }); // nats-server leaves it behind
    },
  };
}
