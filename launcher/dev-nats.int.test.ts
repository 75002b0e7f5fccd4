/**
 * `tickmesh dev` with its embedded nats-server: the server config and passwords it generates in
 * the data folder (mode 600, the same after a restart), an anonymous client refused, and the
 * banner's NATS CLI credential restarting an actor through the documented request. Runs the dev
 * system in this process on a test database (dev.int.test.ts covers the clone and embedded
 * PostgreSQL).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { afterAll, describe, expect, it } from 'vitest';
import { requestActorRestart } from '../core/micro.ts';
import { connectNats } from '../core/nats.ts';
import { actorIds, BUCKETS, decodeJson } from '../core/protocol/index.ts';
import { eventually, freshDatabase, startTestNats, testLog } from '../test/support/infra.ts';
import { type DevSystem, natsCliCommand, startDev } from './dev.ts';

describe('tickmesh dev: NATS with authorization', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tickmesh-dev-nats-'));
  let sys: DevSystem | null = null;

  afterAll(async () => {
    await sys?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('generates users and passwords, refuses anonymous clients, and restarts an actor for the operator', async () => {
    await using db = await freshDatabase();
    const env = {
      TICKMESH_DATA_DIR: dir,
      DATABASE_URL: db.url,
      NATS_URL: '',
      PORT: '0',
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
    };
    sys = await startDev(env, testLog);
    const operator = sys.natsOperator!;
    expect(operator.user).toBe('operator');
    expect(natsCliCommand(sys.natsUrl, operator)).toBe(
      `nats --server ${sys.natsUrl} --user 'operator' --password '${operator.pass}'`,
    );
    for (const file of ['credentials.json', 'nats-server.conf'])
      expect(statSync(join(dir, 'nats', file)).mode & 0o777, file).toBe(0o600);

    await expect(connectNats(sys.natsUrl, 'anonymous')).rejects.toThrow(/authorization/i);
    const nc = await connectNats(sys.natsUrl, 'operator', operator);
    try {
      const id = actorIds.symbol('sim', 'BTC/USDT');
      const health = await new Kvm(nc).open(BUCKETS.actorHealth);
      const session = async () => {
        const e = await health.get(id);
        const rec = e?.operation === 'PUT' ? decodeJson(e.value) : null;
        const h = rec?.ok ? (rec.value as { status: string; sessionId: string }) : null;
        return h?.status === 'running' ? h.sessionId : null;
      };
      const before = await eventually(session, 'the actor running');
      // `nats request tickmesh.supervisor.restart '{"id":…}'` with the banner's credential.
      expect(await requestActorRestart(nc, id)).toMatchObject({ id, restarted: true });
      await eventually(async () => {
        const now = await session();
        return now && now !== before;
      }, 'the actor running in a new session');
    } finally {
      await nc.close();
    }

    await sys.stop();
    sys = await startDev(env, testLog);
    expect(sys.natsOperator).toEqual(operator); // kept in the data folder across restarts
    await expect(connectNats(sys.natsUrl, 'anonymous')).rejects.toThrow(/authorization/i);
    await sys.stop(); // before its database goes
    sys = null;
  });

  it('on a NATS_URL with users: refuses to start without their passwords, runs with them', async () => {
    await using nats = await startTestNats();
    await using db = await freshDatabase();
    const env = {
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      PORT: '0',
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      SIM_ENABLED: 'false',
    };
    await expect(startDev(env, testLog)).rejects.toThrow(/refused a client without credentials/);
    const withPasswords = await startDev({ ...env, ...nats.env() }, testLog);
    try {
      expect(withPasswords.natsOperator).toEqual({ user: 'operator', pass: nats.passwords.operator });
    } finally {
      await withPasswords.stop();
    }
  });
});
