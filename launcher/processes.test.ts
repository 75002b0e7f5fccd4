import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/log.ts';
import { clearStalePidFile, isAlive } from './processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'tickmesh-pidfile-'));
const log = createLogger('silent');
const children: ChildProcess[] = [];

/** A live process whose command line names `owner`, as a server's names its data folder. */
async function liveProcess(owner: string): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300_000)', owner], { stdio: 'ignore' });
  children.push(child);
  await new Promise((r) => child.once('spawn', r));
  return child.pid!;
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('clearStalePidFile', () => {
  it('stops a process left running on this data folder and removes its pid file', async () => {
    const owner = join(dir, 'store-a');
    const pid = await liveProcess(owner);
    expect(isAlive(pid)).toBe(true);
    const pidFile = join(dir, 'a.pid');
    writeFileSync(pidFile, `${pid}\n`);
    await clearStalePidFile('nats-server', pidFile, owner, log);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
  });

  // Regression: the pid in a stale file may since belong to another program (the machine's own
  // postgres or nats-server); matching only the program's name signalled it.
  it('leaves a process that only reuses the pid alone, and still removes the file', async () => {
    const pid = await liveProcess(join(dir, 'store-other'));
    const pidFile = join(dir, 'b.pid');
    writeFileSync(pidFile, `${pid}\n/some/data\n`);
    await clearStalePidFile('postgres', pidFile, join(dir, 'store-b'), log);
    expect(isAlive(pid)).toBe(true);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('removes a pid file whose process is gone', async () => {
    const pidFile = join(dir, 'c.pid');
    writeFileSync(pidFile, '999999999\n');
    await clearStalePidFile('postgres', pidFile, dir, log);
    expect(existsSync(pidFile)).toBe(false);
  });
});
