/**
 * Helpers for the servers the dev launcher runs as children: free ports, stale pid files,
 * and a watchdog that stops a child when this process dies without cleaning up (SIGKILL),
 * so no nats-server or postgres is left orphaned on its data folder.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { EmbeddedServerError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** The errno code of a system error (`ENOENT`, `EACCES`, ...), or undefined. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Clears a pid file an earlier run left behind. A process still alive under that pid is stopped
 * only when its command line names `owner` (its data folder): pids are reused, and a pid file
 * must never make us signal the machine's own postgres or nats-server.
 */
export async function clearStalePidFile(
  server: string,
  pidFile: string,
  owner: string,
  log: Logger,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]?.trim());
  if (pid > 0 && isAlive(pid) && commandOf(pid).includes(owner)) {
    try {
      process.kill(pid, signal);
      for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch (e) {
      throw new EmbeddedServerError(
        server,
        `a ${server} left running by an earlier run (pid ${pid}) cannot be stopped (${errnoOf(e) ?? e})`,
        `stop it yourself (kill ${pid}) and start again`,
        { cause: e },
      );
    }
    log.warn({ pid }, `stopped a ${server} left running by an earlier run`);
  }
  removeLeftover(server, pidFile);
}

/** Removes a file an earlier run of `server` left behind, or says why it cannot. */
export function removeLeftover(server: string, path: string): void {
  try {
    rmSync(path, { force: true });
  } catch (e) {
    throw new EmbeddedServerError(
      server,
      `cannot remove ${path}, left by an earlier run (${errnoOf(e) ?? e})`,
      'remove it yourself, or start as the user that owns it',
      { cause: e },
    );
  }
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export async function freePort(preferred?: number): Promise<number> {
  if (preferred && (await portIsFree(preferred))) return preferred;
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A tiny shell that waits for its stdin to close (which happens however this process dies)
 * and then signals `pid`. Returns the watchdog so a clean shutdown can dismiss it.
 */
export function watchdog(pid: number, signal: 'TERM' | 'INT' = 'TERM'): ChildProcess {
  // Shell builtins only, from an absolute shell: a PATH without /bin (a broken set-up) must
  // neither lose the guard nor fire it at once.
  const dog = spawn('/bin/sh', ['-c', `while read -r _; do :; done; kill -${signal} ${pid} 2>/dev/null`], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  dog.on('error', () => {}); // no shell: the server just is not guarded; never an unhandled event
  dog.unref();
  return dog;
}

export function dismiss(dog: ChildProcess): void {
  // Killing the watchdog first means closing its stdin will not signal anything.
  dog.kill('SIGKILL');
}
