/**
 * The README's run command, as a newcomer runs it: `tickmesh dev` from a fresh clone inside a
 * folder only its owner can enter (as /root is), with nothing configured and no data folder set,
 * so `.data` is inside the clone. It starts its own nats-server and embedded PostgreSQL (as root
 * the postgres user cannot reach the clone: the server runs from a staged copy), seeds the
 * simulator, serves the dashboard, and comes back after kill -9 on the same data (stale pid
 * files, orphaned servers).
 */
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STAGE_ROOT } from '../launcher/postgres-placement.ts';
import { clonePrivately, type PrivateClone } from '../test/support/clone.ts';
import { type Api, gql, signIn } from '../test/support/graphql.ts';
import { eventually } from '../test/support/infra.ts';
import { type RoleProcess, spawnRole } from '../test/support/processes.ts';

let clone: PrivateClone;
const running: RoleProcess[] = [];
const clusters = new Set<string>();

function devEnv(): Record<string, string> {
  // No NATS_URL / DATABASE_URL / TICKMESH_DATA_DIR: the launcher must bring its own, in the clone.
  const env: Record<string, string> = {
    PORT: '0',
    SIM_RATE: '50',
    LOG_LEVEL: 'info',
  };
  for (const k of ['NATS_URL', 'DATABASE_URL', 'TICKMESH_DATA_DIR']) env[k] = '';
  return env;
}

/** Signs in with the admin password the banner printed (npm start generated it on first start). */
async function signInFromBanner(proc: RoleProcess, base: string): Promise<Api> {
  const m = proc.output().match(/sign in\s+user (\S+), password (\S+)/);
  if (!m) throw new Error(`no sign-in line in the banner:\n${proc.output()}`);
  return signIn(base, m[1], m[2]);
}

async function startDevProcess(): Promise<{ proc: RoleProcess; base: string; api: Api }> {
  const proc = spawnRole('dev', devEnv(), { group: true, project: clone.project });
  running.push(proc);
  const base = await eventually(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`dev exited with ${proc.child.exitCode}`);
      return proc.output().match(/dashboard\s+(http:\/\/localhost:\d+)\//)?.[1];
    },
    'dev to print its URL',
    90_000,
  ).catch((e) => {
    throw new Error(`${e.message}\n${proc.output()}`);
  });
  const pgData = proc.output().match(/pg data\s+(\S+)/)?.[1];
  if (pgData?.startsWith(STAGE_ROOT)) clusters.add(dirname(pgData));
  return { proc, base, api: await signInFromBanner(proc, base) };
}

/** Whether something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function allRunning(api: Api): Promise<string[]> {
  return eventually(
    async () => {
      const r = await gql<{ actors: { id: string; status: string }[] }>(api, '{ actors { id status } }');
      const ids = r.data?.actors.filter((a) => a.status === 'running').map((a) => a.id) ?? [];
      return ids.length === 8 ? ids : null;
    },
    'seven running actors',
    30_000,
  );
}

describe('tickmesh dev', () => {
  beforeAll(() => {
    clone = clonePrivately();
  });

  afterAll(async () => {
    for (const p of running) await p.kill('SIGKILL');
    // Orphans (if any) are stopped by the launcher's watchdogs.
    clone?.remove();
    for (const c of clusters) rmSync(c, { recursive: true, force: true });
  });

  it('runs the whole system with embedded NATS and PostgreSQL, and survives kill -9', async () => {
    const first = await startDevProcess();
    expect(first.proc.output()).toMatch(/nats\s+nats:\/\/127\.0\.0\.1:\d+/);
    expect(existsSync(join(clone.project, '.data', 'nats', 'store'))).toBe(true);
    // As root the postgres user cannot enter the clone: the banner says where the cluster went.
    if (process.getuid?.() === 0) expect(clusters.size).toBe(1);
    const page = await fetch(`${first.base}/`);
    expect(page.status).toBe(200);
    // Loopback only without HOST (127.0.0.2 is loopback too, but not the address it bound), and
    // /metrics on its own listener on 127.0.0.1, not on the dashboard's port.
    const port = Number(new URL(first.base).port);
    expect(await accepts('127.0.0.1', port)).toBe(true);
    expect(await accepts('127.0.0.2', port)).toBe(false);
    const metricsUrl = first.proc.output().match(/metrics\s+(http:\/\/127\.0\.0\.1:\d+\/metrics)/)?.[1];
    expect(await fetch(metricsUrl!).then((r) => r.text())).toMatch(/^tickmesh_graphql_subscriptions /m);
    expect((await fetch(`${first.base}/metrics`)).status).toBe(404);
    expect(await page.text()).toContain('<div id="app">');
    const symbols = await gql<{ symbols: { symbol: string }[] }>(
      first.api,
      '{ symbols { exchange symbol } }',
    );
    expect(symbols.data?.symbols.map((s) => s.symbol).sort()).toEqual([
      'AAPL',
      'BTC/USDT',
      'ETH/USDT',
      'MSFT',
      'SOL/USDT',
    ]);
    expect(await allRunning(first.api)).toEqual([
      'alerts.dispatcher',
      'exchange.sim',
      'symbol.sim.AAPL',
      'symbol.sim.BTC-USDT',
      'symbol.sim.ETH-USDT',
      'symbol.sim.MSFT',
      'symbol.sim.SOL-USDT',
      'writer.bars',
    ]);

    expect(await first.proc.kill('SIGKILL')).toBeNull();
    const second = await startDevProcess();
    expect(clusters.size).toBeLessThanOrEqual(1); // the same cluster again
    await allRunning(second.api);
    const symbols2 = await gql<{ symbols: unknown[] }>(second.api, '{ symbols { symbol } }');
    expect(symbols2.data?.symbols).toHaveLength(5);

    // Ctrl-C: the terminal signals the whole process group, and npm/tsx relay it once more. The
    // embedded servers must not stop before the roles have (they run in groups of their own):
    // one clean, complete shutdown, no errors, the relayed signal ignored.
    process.kill(-second.proc.child.pid!, 'SIGINT');
    await eventually(
      async () => second.proc.output().includes('"msg":"shutting down"'),
      'the shutdown to begin',
    );
    expect(await second.proc.kill('SIGINT')).toBe(0);
    const after = second.proc.output().slice(second.proc.output().indexOf('"msg":"shutting down"'));
    expect(after).not.toMatch(/"level":(40|50|60)/);
  });
});
