/**
 * The supervisor's LISTEN connection is given back to the pool exactly once. The server may end
 * it while the supervisor holds it (a restart, an administrator) or after stop() returned it to
 * the pool (the database being dropped); a second release throws from inside pg's event
 * handler, an uncaught exception that would take the process down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSupervisorRole } from '../launcher/roles.ts';
import {
  eventually,
  freshDatabase,
  startTestNats,
  type TestDb,
  type TestNats,
  testConfig,
  testLog,
} from '../test/support/infra.ts';

describe('supervisor LISTEN connection', () => {
  let nats: TestNats;
  let db: TestDb;

  beforeAll(async () => {
    nats = await startTestNats();
    db = await freshDatabase();
  });

  afterAll(async () => {
    await db?.[Symbol.asyncDispose]();
    await nats?.[Symbol.asyncDispose]();
  });

  const listening = async () => {
    const { rows } = await db.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%LISTEN%'
          AND pid <> pg_backend_pid()`,
    );
    return rows.map((r) => r.pid);
  };
  const terminate = async (pid: number) => {
    const { rows } = await db.pool.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    expect(rows[0]!.ok).toBe(true);
  };

  it('listens again after its connection is terminated, and survives one ended after stop()', async () => {
    const role = await startSupervisorRole(testConfig(nats, db), testLog);
    try {
      let pids = await eventually(async () => {
        const p = await listening();
        return p.length === 1 ? p : null;
      }, 'supervisor LISTENing');
      for (let round = 0; round < 2; round++) {
        const before = pids[0]!;
        await terminate(before);
        pids = await eventually(
          async () => {
            const p = await listening();
            return p.length === 1 && p[0] !== before ? p : null;
          },
          `LISTEN again after termination ${round + 1}`,
        );
      }
      // stop() returns the connection to the pool (its last query was UNLISTEN); the pool is
      // still open, so the server can end that idle connection afterwards.
      await role.supervisor.stop();
      const idle = pids[0]!;
      await terminate(idle);
      await eventually(async () => !(await listening()).includes(idle), 'connection ended');
    } finally {
      await role.stop();
    }
  });
});
