/**
 * Sessions and keys over GraphQL on a real gateway: login, single-use rotated refresh tokens
 * (a reused one revokes its family), logout, API keys shown once and revocable at once, and the
 * admin's user operations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, gql, signIn } from './support/graphql.ts';
import { startSystem, type TestSystem } from './support/system.ts';

interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
  user: { username: string; role: string };
}
const SESSION = 'accessToken refreshToken expiresAt user { username role }';
const LOGIN = `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { ${SESSION} } }`;
const REFRESH = `mutation($t: String!) { refreshSession(refreshToken: $t) { ${SESSION} } }`;
const ME = '{ me { username role } }';

describe('sessions and keys', () => {
  let sys: TestSystem;
  let admin: Api;
  beforeAll(async () => {
    sys = await startSystem({ roles: ['gateway'] });
    admin = await signIn(sys.base);
  });
  afterAll(async () => sys?.stop());

  const login = async (u: string, p: string) => gql<{ login: Session }>(sys.base, LOGIN, { u, p });
  const refresh = async (t: string) => gql<{ refreshSession: Session }>(sys.base, REFRESH, { t });
  const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

  it('log in with a password and answer as that user', async () => {
    const r = await login('admin', 'test-admin-password');
    const s = r.data!.login;
    expect(s.user).toEqual({ username: 'admin', role: 'ADMIN' });
    expect(Date.parse(s.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(Date.parse(s.expiresAt) - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    expect((await gql({ base: sys.base, token: s.accessToken }, ME)).data).toEqual({
      me: { username: 'admin', role: 'ADMIN' },
    });
    expect(codeOf(await login('admin', 'wrong password'))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await login('nobody', 'test-admin-password'))).toBe('TM_ERR_UNAUTHENTICATED');
  });

  it('refresh once per token; a replayed token ends the whole session', async () => {
    const first = (await login('admin', 'test-admin-password')).data!.login;
    const second = (await refresh(first.refreshToken)).data!.refreshSession;
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect((await gql({ base: sys.base, token: second.accessToken }, ME)).data?.me).toBeTruthy();
    // The first token again: refused, and the family (second's refresh token too) is revoked.
    expect(codeOf(await refresh(first.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await refresh(second.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
    // logout ends a session the same way.
    const other = (await login('admin', 'test-admin-password')).data!.login;
    const out = await gql(
      { base: sys.base, token: other.accessToken },
      'mutation($t: String!) { logout(refreshToken: $t) }',
      { t: other.refreshToken },
    );
    expect(out.data).toEqual({ logout: true });
    expect(codeOf(await refresh(other.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
  });

  it('give an API key once, store it hashed, and stop it at once when revoked', async () => {
    const created = await gql<{ createApiKey: { id: string; key: string; role: string } }>(
      admin,
      'mutation { createApiKey(name: "grafana", role: VIEWER) { id key name role } }',
    );
    const { id, key } = created.data!.createApiKey;
    expect(created.data!.createApiKey.role).toBe('VIEWER');
    const program = { base: sys.base, token: key };
    expect((await gql(program, ME)).data).toEqual({ me: { username: 'admin', role: 'VIEWER' } });
    const listed = await gql<{ apiKeys: Record<string, unknown>[] }>(
      admin,
      '{ apiKeys { id name role owner revoked } }',
    );
    expect(listed.data!.apiKeys).toEqual([
      { id, name: 'grafana', role: 'VIEWER', owner: 'admin', revoked: false },
    ]);
    expect(JSON.stringify(listed)).not.toContain(key);
    const { rows } = await sys.db.pool.query('SELECT key_hash FROM api_keys');
    expect(JSON.stringify(rows)).not.toContain(key.slice(4));
    expect((await gql(admin, `mutation { revokeApiKey(id: "${id}") }`)).data).toEqual({ revokeApiKey: true });
    expect(codeOf(await gql(program, ME))).toBe('TM_ERR_UNAUTHENTICATED');
  });

  it('let the admin create users, change their role, reset their password and disable them', async () => {
    const created = await gql(
      admin,
      'mutation { createUser(username: "vera", password: "vera password", role: VIEWER) { username role disabled } }',
    );
    expect(created.data).toEqual({ createUser: { username: 'vera', role: 'VIEWER', disabled: false } });
    expect((await login('vera', 'vera password')).data!.login.user).toEqual({
      username: 'vera',
      role: 'VIEWER',
    });
    const role = await gql(admin, 'mutation { setUserRole(username: "vera", role: TRADER) { role } }');
    expect(role.data).toEqual({ setUserRole: { role: 'TRADER' } });
    const old = (await login('vera', 'vera password')).data!.login;
    expect(old.user.role).toBe('TRADER');
    await gql(
      admin,
      'mutation { resetPassword(username: "vera", password: "new vera password") { username } }',
    );
    expect(codeOf(await login('vera', 'vera password'))).toBe('TM_ERR_UNAUTHENTICATED');
    // A reset ends the sessions that were open.
    expect(codeOf(await refresh(old.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
    const fresh = (await login('vera', 'new vera password')).data!.login;
    const off = await gql(admin, 'mutation { disableUser(username: "vera") { disabled } }');
    expect(off.data).toEqual({ disableUser: { disabled: true } });
    expect(codeOf(await login('vera', 'new vera password'))).toBe('TM_ERR_UNAUTHENTICATED');
    expect(codeOf(await refresh(fresh.refreshToken))).toBe('TM_ERR_UNAUTHENTICATED');
    const users = await gql<{ users: { username: string; role: string; disabled: boolean }[] }>(
      admin,
      '{ users { username role disabled } }',
    );
    expect(users.data!.users).toEqual([
      { username: 'admin', role: 'ADMIN', disabled: false },
      { username: 'vera', role: 'TRADER', disabled: true },
    ]);
    expect(JSON.stringify(users)).not.toMatch(/password|argon2/);
  });
});
