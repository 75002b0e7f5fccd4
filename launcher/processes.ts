/**
 * Helpers for the servers the dev launcher runs as children: free ports, stale pid files,
 * and a watchdog that stops a child when this process dies without cleaning up (SIGKILL),
 * so no nats-server or postgres is left orphaned on its data folder.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

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

/** Stops a process left behind by an earlier run (if it is still the program we expect). */
export async function stopStale(
  pid: number,
  expect: RegExp,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<boolean> {
  if (!isAlive(pid) || !expect.test(commandOf(pid))) return false;
  process.kill(pid, signal);
  for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  return true;
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
  const dog = spawn('sh', ['-c', `cat >/dev/null; kill -${signal} ${pid} 2>/dev/null`], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  dog.unref();
  return dog;
}

export function dismiss(dog: ChildProcess): void {
  // Killing the watchdog first means closing its stdin will not signal anything.
  dog.kill('SIGKILL');
}
