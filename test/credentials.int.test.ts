/**
 * A credential change takes effect at once everywhere, whoever makes it: on two gateway replicas
 * sharing one database, a revoked API key, a disabled user (as `tickmesh users disable` does it,
 * straight in the database), a password reset and a role change close the open graphql-ws
 * sockets they affect (4401, or 4403 for the role) and refuse the old credential over HTTP; the
 * watch survives losing its database connection; failed logins lock a user out on every
 * replica; refreshSession, which needs no token, is in the audit log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disableUser, createUser as storeCreateUser } from '../core/users-store.ts';
import { WATCH_APPLICATION } from '../graphql/credential-watch.ts';
import { startGatewayRole } from '../launcher/roles.ts';
import { type Api, gql, gqlHttp, signIn, type Target, wsClient } from './support/graphql.ts';
import { eventually, testLog } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

const ME = '{ me { username role } }';
const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

/** A connected graphql-ws socket and the promise of its close code and reason. */
async function openSocket(target: Target) {
  let closed!: (e: { code: number; reason: string }) => void;
  const whenClosed = new Promise<{ code: number; reason: string }>((r) => (closed = r));
  const client = wsClient(target, {
    lazy: false,
    onNonLazyError: () => {}, // the close is what these tests wait for
    on: { closed: (e) => closed({ code: (e as CloseEvent).code, reason: (e as CloseEvent).reason }) },
  });
  await new Promise<void>((resolve) => client.on('connected', () => resolve()));
  return { client, closed: whenClosed };
}

describe('credential changes on every replica', () => {
  let sys: TestSystem;
  let replicaB: Awaited<ReturnType<typeof startGatewayRole>>;
  let adminA: Api;
  beforeAll(async () => {
    sys = await startSystem({
      roles: ['gateway'],
      config: { auth: { maxFailuresPerUser: 2, maxFailuresPerAddress: 50, lockoutMs: 60_000 } },
    });
    replicaB = await startGatewayRole(sys.cfg, testLog);
    adminA = await signIn(sys.base);
  });
  afterAll(async () => {
    await replicaB?.stop();
    await sys?.stop();
  });

  const at = (base: string, token: string): Api => ({ base, token });

  it('close a socket on replica B when its API key is revoked on replica A', async () => {
    const created = await gql<{ createApiKey: { id: string; key: string } }>(
      adminA,
      'mutation { createApiKey(name: "feed reader", role: VIEWER) { id key } }',
    );
    const { id, key } = created.data!.createApiKey;
    const socket = await openSocket(at(replicaB.url, key));
    expect((await gql(at(replicaB.url, key), ME)).data).toEqual({
      me: { username: 'admin', role: 'VIEWER' },
    });
    await gql(adminA, `mutation { revokeApiKey(id: "${id}") }`);
    expect(await socket.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    const http = await gqlHttp(at(replicaB.url, key), ME);
    expect([http.status, codeOf(http.body)]).toEqual([401, 'TM_ERR_UNAUTHENTICATED']);
    await socket.client.dispose();
  });

  it('close the sockets of a user disabled outside the gateway, and refuse their token', async () => {
    await storeCreateUser(sys.db.pool, 'wes', 'wes password', 'viewer');
    const wes = await signIn(replicaB.url, 'wes', 'wes password');
    const [onA, onB] = [await openSocket(at(sys.base, wes.token)), await openSocket(wes)];
    await disableUser(sys.db.pool, 'wes'); // what `tickmesh users disable wes` runs
    expect(await onA.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(await onB.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect((await gqlHttp(wes, ME)).status).toBe(401);
    await onA.client.dispose();
    await onB.client.dispose();
  });

  it('end every access token at a password reset; a new login works', async () => {
    await storeCreateUser(sys.db.pool, 'pam', 'pam password', 'trader');
    const pam = await signIn(sys.base, 'pam', 'pam password');
    const socket = await openSocket(pam);
    await gql(
      adminA,
      'mutation { resetPassword(username: "pam", password: "pam new password") { username } }',
    );
    expect((await socket.closed).code).toBe(4401);
    expect(codeOf(await gql(pam, ME))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await gql(at(replicaB.url, pam.token), ME))).toBe('TM_ERR_UNAUTHENTICATED');
    const again = await signIn(replicaB.url, 'pam', 'pam new password');
    expect((await gql(again, ME)).data).toEqual({ me: { username: 'pam', role: 'TRADER' } });
    await socket.client.dispose();
  });

  it('apply a role change to the next request, and close open sockets with 4403', async () => {
    await storeCreateUser(sys.db.pool, 'rob', 'rob password', 'trader');
    const rob = await signIn(replicaB.url, 'rob', 'rob password');
    const socket = await openSocket(rob);
    await gql(adminA, 'mutation { setUserRole(username: "rob", role: VIEWER) { role } }');
    expect(await socket.closed).toEqual({ code: 4403, reason: 'role changed: reconnect' });
    // The same token now acts as a viewer: its trader operations are refused.
    expect((await gql(rob, ME)).data).toEqual({ me: { username: 'rob', role: 'VIEWER' } });
    expect(codeOf(await gql(rob, '{ alertRules { id } }'))).toBe('TM_ERR_FORBIDDEN');
    // Reconnecting works, under the new role.
    const again = await openSocket(rob);
    await again.client.dispose();
    await socket.client.dispose();
  });

  it('re-check every socket after losing the database connection it listens on', async () => {
    const created = await gql<{ createApiKey: { id: string; key: string } }>(
      adminA,
      'mutation { createApiKey(name: "dashboard tv", role: VIEWER) { id key } }',
    );
    const { id, key } = created.data!.createApiKey;
    const socket = await openSocket(at(replicaB.url, key));
    const listeners = async () =>
      (
        await sys.db.pool.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
          [WATCH_APPLICATION],
        )
      ).rows.map((r) => r.pid);
    const before = await listeners();
    expect(before).toHaveLength(2); // one per replica
    // Cut both watches off, and revoke straight away: the notice may go to nobody.
    await sys.db.pool.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
      [WATCH_APPLICATION],
    );
    await sys.db.pool.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [id]);
    expect((await socket.closed).code).toBe(4401);
    const after = await eventually(async () => {
      const pids = await listeners();
      return pids.length === 2 && pids.every((p) => !before.includes(p)) && pids;
    }, 'both watches listening again');
    expect(after).toHaveLength(2);
    await socket.client.dispose();
  });

  it('count failed logins in the database: two failures on A lock the user out on B', async () => {
    await storeCreateUser(sys.db.pool, 'lou', 'lou password', 'viewer');
    const login = (base: string, password: string) =>
      gql(base, 'mutation($p: String!) { login(username: "lou", password: $p) { accessToken } }', {
        p: password,
      });
    expect(codeOf(await login(sys.base, 'wrong 1'))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await login(sys.base, 'wrong 2'))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await login(replicaB.url, 'lou password'))).toBe('TM_ERR_LOGIN_LOCKED');
    const { rows } = await sys.db.pool.query("SELECT points FROM login_failures WHERE key = 'user:lou'");
    expect(rows).toEqual([{ points: 2 }]);
  });

  it('record every refreshSession in the audit log, with the owner and why one was refused', async () => {
    const first = await signIn(sys.base);
    const refresh = (t: string) =>
      gql(sys.base, 'mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }', { t });
    expect((await refresh(first.refreshToken)).data).toBeTruthy();
    expect(codeOf(await refresh(first.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await refresh('tmr_not-a-token'))).toBe('TM_ERR_UNAUTHENTICATED');
    const { rows } = await sys.db.pool.query(
      `SELECT actor, role, arguments, result FROM audit_log WHERE operation = 'refreshSession' ORDER BY id`,
    );
    expect(rows).toEqual([
      { actor: 'admin', role: 'admin', arguments: {}, result: 'ok' },
      { actor: 'admin', role: null, arguments: { reason: 'reused' }, result: 'TM_ERR_UNAUTHENTICATED' },
      { actor: null, role: null, arguments: { reason: 'unknown' }, result: 'TM_ERR_UNAUTHENTICATED' },
    ]);
    expect(JSON.stringify(rows)).not.toContain(first.refreshToken);
  });
});
