/** Runs tickmesh roles as real child processes, so tests can kill -9 them. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dismiss, watchdog } from '../../launcher/processes.ts';

const BIN = fileURLToPath(new URL('../../bin/tickmesh.js', import.meta.url));

export interface RoleProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `group`: the role leads a process group of its own, as a command started from a terminal
 * does, so a test can signal the whole group the way Ctrl-C does (`process.kill(-pid, sig)`).
 * `project`: run the CLI of another checkout (a clone) from its own folder.
 */
export function spawnRole(
  role: string,
  env: Record<string, string>,
  opts: { group?: boolean; project?: string } = {},
): RoleProcess {
  const bin = opts.project ? join(opts.project, 'bin', 'tickmesh.js') : BIN;
  const child = spawn(process.execPath, [bin, role], {
    cwd: opts.project,
    env: { ...process.env, LOG_LEVEL: 'warn', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.group ?? false,
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  // A test that dies (or times out without its afterAll) must not leave a role running: the
  // watchdog stops it when this process goes away, however it goes.
  const dog = watchdog(child.pid!);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      dismiss(dog);
      resolve(code);
    }),
  );
  return {
    child,
    output: () => out,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
