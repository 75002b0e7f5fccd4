/**
 * Runs a `nats-server` child with JetStream on a project data folder (dev mode only).
 * Readiness comes from its ports file; a pid file guards against two servers on one store.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedServerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { dismiss, freePort, stopStale, watchdog } from './processes.ts';

export interface EmbeddedNats {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startNatsServer(dir: string, log: Logger, preferredPort = 4223): Promise<EmbeddedNats> {
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dir, 'nats-server.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid && (await stopStale(pid, /nats-server/)))
      log.warn({ pid }, 'stopped a nats-server left running by an earlier run');
    rmSync(pidFile, { force: true });
  }
  for (const f of readdirSync(dir)) if (f.endsWith('.ports')) rmSync(join(dir, f), { force: true });
  const port = await freePort(preferredPort);
  const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
  const child: ChildProcess = spawn(
    bin,
    [
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      '-js',
      '-sd',
      join(dir, 'store'),
      '-P',
      pidFile,
      '--ports_file_dir',
      dir,
    ],
    // A process group of its own: Ctrl-C in the terminal signals the whole foreground group,
    // and the server must outlive the roles' graceful stop (dev stops it last).
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const errors: string[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    const s = d.toString();
    if (/\[(ERR|FTL)\]/.test(s)) errors.push(s.trim());
  });
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (spawned) {
    throw new EmbeddedServerError(
      'nats-server',
      `cannot start ${bin} (install it, e.g. apt-get install nats-server, or set NATS_URL)`,
      { cause: spawned },
    );
  }
  const dog = watchdog(child.pid!);
  const portsFile = join(dir, `nats-server_${child.pid}.ports`);
  for (let i = 0; !existsSync(portsFile); i++) {
    if (child.exitCode !== null || i > 200) {
      dismiss(dog);
      child.kill('SIGKILL');
      throw new EmbeddedServerError(
        'nats-server',
        `did not become ready: ${errors.join(' | ') || 'no ports file'}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = `nats://127.0.0.1:${port}`;
  log.info({ url, store: join(dir, 'store') }, 'embedded nats-server started');
  return {
    url,
    port,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      dismiss(dog);
    },
  };
}
