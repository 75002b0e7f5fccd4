/**
 * A broken set-up makes `tickmesh dev` print one line that says what failed and how to fix it,
 * and exit non-zero: never a stack trace (regression: an unhandled 'error' event from the
 * embedded PostgreSQL's spawn, and a message plus a "cause:" line, were printed before).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnRole } from '../test/support/processes.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'tickmesh-dev-fail-'));

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function failedStart(
  env: Record<string, string>,
  dir = dataDir,
): Promise<{ code: number | null; lines: string[] }> {
  const proc = spawnRole('dev', {
    TICKMESH_DATA_DIR: dir,
    NATS_URL: '',
    DATABASE_URL: '',
    NATS_SERVER_BIN: '',
    LOG_LEVEL: 'info',
    ...env,
  });
  const code = await proc.exited;
  return { code, lines: proc.output().split('\n').filter(Boolean) };
}

function expectOneLine(r: { code: number | null; lines: string[] }, line: RegExp): void {
  expect(r.lines.join('\n')).not.toMatch(/^\s+at /m);
  expect(r.lines).toHaveLength(1);
  expect(r.lines[0]).toMatch(line);
  expect(r.code).toBe(1);
}

// Concurrent: each start is a process of its own that fails before it holds anything.
describe.concurrent('tickmesh dev with a broken set-up', () => {
  it('says nats-server is missing from PATH', async () => {
    const path = (process.env.PATH ?? '')
      .split(delimiter)
      .filter((d) => d && !existsSync(join(d, 'nats-server')))
      .join(delimiter);
    expectOneLine(
      await failedStart({ PATH: path }),
      /^tickmesh: nats-server: not found on PATH; install it .*NATS_SERVER_BIN.*NATS_URL/,
    );
  });

  it('says NATS_SERVER_BIN points at nothing', async () => {
    expectOneLine(
      await failedStart({ NATS_SERVER_BIN: join(dataDir, 'no-such-nats-server') }),
      /^tickmesh: nats-server: NATS_SERVER_BIN=\S+no-such-nats-server does not exist; /,
    );
  });

  it('says the gateway port is taken, before starting any server', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '0.0.0.0', r));
    const port = (taken.address() as { port: number }).port;
    const untouched = join(dataDir, 'untouched');
    try {
      expectOneLine(
        await failedStart({ PORT: String(port) }, untouched),
        new RegExp(`^tickmesh: gateway: port ${port} on 127\\.0\\.0\\.1 is already in use; .*PORT`),
      );
    } finally {
      taken.close();
    }
    expect(existsSync(untouched)).toBe(false);
  });

  it('says DATABASE_URL answers nothing, at once instead of after minutes of retries', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const url = `postgres://postgres:secret@127.0.0.1:${port}/tickmesh`;
    const r = await failedStart({ DATABASE_URL: url, NATS_URL: 'nats://127.0.0.1:1' });
    expectOneLine(r, /^tickmesh: (nats|database): cannot reach (NATS|DATABASE)_URL=/);
    expect(r.lines[0]).not.toContain('secret');
  });
});
