/**
 * Integration-test setup, once per run: find a PostgreSQL to create per-file databases in
 * (TEST_DATABASE_URL, else the local server on 127.0.0.1:5432, else a private embedded one in a
 * temporary folder) and check that nats-server exists. Each test file starts its own
 * nats-server (see support/nats.ts), so files never share streams or KV state.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../../core/log.ts';
import { type EmbeddedDb, startEmbeddedPostgres } from '../../launcher/embedded-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

async function reachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

export default async function setup(project: TestProject) {
  try {
    execFileSync(process.env.NATS_SERVER_BIN ?? 'nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'integration tests need nats-server on PATH (apt-get install nats-server) or NATS_SERVER_BIN',
    );
  }
  let embedded: EmbeddedDb | null = null;
  let dir: string | null = null;
  let url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (!(await reachable(url))) {
    dir = mkdtempSync(join(tmpdir(), 'tickmesh-pg-'));
    chmodSync(dir, 0o755); // the postgres user (when we are root) must reach it
    embedded = await startEmbeddedPostgres(dir, createLogger('warn'), 0);
    url = embedded.url.replace(/\/tickmesh$/, '/postgres');
  }
  project.provide('pgAdminUrl', url);
  return async () => {
    await embedded?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}
