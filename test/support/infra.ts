/**
 * Real infrastructure for integration tests: a private nats-server (temporary store, free
 * port, authorization on: every component connects as its own user) and a fresh, migrated
 * database per test file. Dispose both with `await using` or in an
 * afterAll hook.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { type Config, loadConfig, mergeDeep, natsPasswordVariable } from '../../core/config.ts';
import { createPool, type Pool } from '../../core/db.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import { migrate } from '../../core/migrate.ts';
import { connectAs, ensureTopology, type Topology } from '../../core/nats.ts';
import { NATS_PRINCIPALS } from '../../core/nats-permissions.ts';
import { startNatsServer } from '../../launcher/embedded-nats.ts';
import type { NatsPasswords } from '../../launcher/nats-auth.ts';

export const testLog: Logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export interface TestNats extends AsyncDisposable {
  url: string;
  dir: string;
  /** Every NATS user's password (the same across restart()). */
  passwords: NatsPasswords;
  /** NATS_URL and NATS_PASSWORD_* for a role run as a child process. */
  env(): Record<string, string>;
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same store and port. */
  restart(): Promise<void>;
}

export async function startTestNats(): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'tickmesh-nats-'));
  let server = await startNatsServer(dir, testLog, 0);
  const port = server.port;
  const nats: TestNats = {
    url: server.url,
    dir,
    passwords: server.passwords,
    env: () => ({
      NATS_URL: server.url,
      ...Object.fromEntries(NATS_PRINCIPALS.map((p) => [natsPasswordVariable(p), server.passwords[p]])),
    }),
    async stop() {
      await server.stop();
    },
    async restart() {
      await server.stop();
      server = await startNatsServer(dir, testLog, port);
      if (server.port !== port) throw new Error(`nats-server came back on ${server.port}, not ${port}`);
    },
    async [Symbol.asyncDispose]() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return nats;
}

export interface TestDb extends AsyncDisposable {
  url: string;
  name: string;
  pool: Pool;
}

export async function freshDatabase(): Promise<TestDb> {
  const adminUrl = inject('pgAdminUrl');
  const name = `tm_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  await migrate(url, testLog);
  const pool = createPool(url, 5);
  return {
    url,
    name,
    pool,
    async [Symbol.asyncDispose]() {
      await pool.end().catch(() => {});
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Fixed keys for tests (npm start generates its own into the data folder). */
export const TEST_AUTH = {
  adminUser: 'admin',
  adminPassword: 'test-admin-password',
  jwtSecret: 'test-jwt-secret-0123456789abcdef0123456789',
  secretKey: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
};

/** TEST_AUTH as the environment of a role process (the gateway refuses to start without keys). */
export function authEnv(): Record<string, string> {
  return {
    TICKMESH_JWT_SECRET: TEST_AUTH.jwtSecret,
    TICKMESH_SECRET_KEY: TEST_AUTH.secretKey,
    TICKMESH_ADMIN_USER: TEST_AUTH.adminUser,
    TICKMESH_ADMIN_PASSWORD: TEST_AUTH.adminPassword,
  };
}

const HUGE = { points: 1_000_000, durationSec: 60 };
export const TEST_RATE_LIMITS = { query: HUGE, mutation: HUGE, login: HUGE, subscribe: HUGE };

/** A config for tests: fast heartbeats and polling, no simulator unless asked. */
export function testConfig(nats: TestNats, db: TestDb, overrides: Record<string, unknown> = {}): Config {
  return loadConfig(
    {},
    mergeDeep(
      {
        nats: { url: nats.url, passwords: nats.passwords },
        database: { url: db.url, poolMax: 5 },
        // Budgets no test meets by accident; test/limits.int.test.ts sets small ones.
        gateway: { host: '127.0.0.1', port: 0, rateLimits: TEST_RATE_LIMITS },
        sim: { enabled: false },
        bars: { graceMs: 200, formingThrottleMs: 50, snapshotIntervalMs: 200 },
        health: { heartbeatMs: 300, ttlMs: 2000 },
        supervisor: { pollMs: 200, leaseTtlMs: 3000 },
        writer: { flushMs: 20 },
        auth: TEST_AUTH,
      },
      overrides,
    ),
  );
}

/** The topology as the operator (a test publishes what an external exchange would, and more). */
export async function topology(cfg: Config, name = 'test'): Promise<Topology & AsyncDisposable> {
  const nc = await connectAs(cfg, 'operator', name);
  const topo = await ensureTopology(nc, cfg);
  return Object.assign(topo, {
    async [Symbol.asyncDispose]() {
      await nc.close();
    },
  });
}

/** Polls `probe` until it returns a truthy value (an event-less condition such as a DB row). */
export async function eventually<T>(
  probe: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
