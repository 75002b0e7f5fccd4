/** The auth tables' stores against a real PostgreSQL: users, API keys, refresh tokens, audit log. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../test/support/infra.ts';
import { createApiKey, findApiKey, listApiKeys, revokeApiKey } from './api-keys-store.ts';
import { appendAudit, readAudit } from './audit-store.ts';
import { BadArgumentError, NotFoundError } from './errors.ts';
import { issueRefreshToken, revokeRefreshFamily, rotateRefreshToken } from './refresh-tokens-store.ts';
import {
  createUser,
  disableUser,
  listUsers,
  readUser,
  resetPassword,
  setUserRole,
  upsertUser,
  verifyLogin,
} from './users-store.ts';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db?.[Symbol.asyncDispose]());

describe('users', () => {
  it('store an argon2id hash, never the password, and verify logins', async () => {
    const alice = await createUser(db.pool, 'alice', 'correct horse', 'trader');
    expect(alice).toMatchObject({ username: 'alice', role: 'trader', disabledAt: null });
    expect(alice).not.toHaveProperty('password_hash');
    const { rows } = await db.pool.query('SELECT password_hash FROM users WHERE username = $1', ['alice']);
    expect(rows[0].password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(rows[0].password_hash).not.toContain('correct horse');
    expect(await verifyLogin(db.pool, 'alice', 'correct horse')).toMatchObject({ role: 'trader' });
    expect(await verifyLogin(db.pool, 'alice', 'wrong horse')).toBeNull();
    expect(await verifyLogin(db.pool, 'nobody', 'correct horse')).toBeNull();
    await expect(createUser(db.pool, 'alice', 'another one', 'viewer')).rejects.toThrow(BadArgumentError);
    await expect(createUser(db.pool, 'bob', 'short', 'viewer')).rejects.toThrow(/password/);
    await expect(createUser(db.pool, 'bob', 'long enough', 'root')).rejects.toThrow(/role/);
  });

  it('change role, reset password and disable', async () => {
    await createUser(db.pool, 'carol', 'first password', 'viewer');
    expect((await setUserRole(db.pool, 'carol', 'admin')).role).toBe('admin');
    await resetPassword(db.pool, 'carol', 'second password');
    expect(await verifyLogin(db.pool, 'carol', 'first password')).toBeNull();
    expect(await verifyLogin(db.pool, 'carol', 'second password')).toMatchObject({ role: 'admin' });
    expect((await disableUser(db.pool, 'carol')).disabledAt).toBeInstanceOf(Date);
    expect(await verifyLogin(db.pool, 'carol', 'second password')).toBeNull();
    await expect(setUserRole(db.pool, 'nobody', 'viewer')).rejects.toThrow(NotFoundError);
    // The bootstrap's upsert re-enables and resets (ending sessions: a new token_version) …
    const version = (await readUser(db.pool, 'carol'))!.tokenVersion;
    expect(await upsertUser(db.pool, 'carol', 'third password', 'admin')).toMatchObject({ changed: true });
    expect(await verifyLogin(db.pool, 'carol', 'third password')).toMatchObject({ role: 'admin' });
    expect((await readUser(db.pool, 'carol'))!.tokenVersion).toBeGreaterThan(version);
    // … and leaves the user alone when nothing changes (every role's start runs it).
    const same = await upsertUser(db.pool, 'carol', 'third password', 'admin');
    expect(same).toMatchObject({ changed: false, tokenVersion: version + 1 });
    expect((await listUsers(db.pool)).map((u) => u.username)).toEqual(['alice', 'carol']);
  });
});

describe('API keys', () => {
  it('are stored hashed, found by the key, and stop matching once revoked', async () => {
    await createUser(db.pool, 'dave', 'dave password', 'admin');
    const { key, row } = await createApiKey(db.pool, 'dave', 'grafana', 'viewer');
    expect(key).toMatch(/^tmk_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.pool.query('SELECT key_hash FROM api_keys WHERE id = $1', [row.id]);
    expect(rows[0].key_hash).not.toContain(key.slice(4));
    expect(await findApiKey(db.pool, key)).toMatchObject({ id: row.id, role: 'viewer', owner: 'dave' });
    expect(await findApiKey(db.pool, `${key}x`)).toBeNull();
    expect((await listApiKeys(db.pool, 'dave')).map((k) => k.id)).toEqual([row.id]);
    expect(await listApiKeys(db.pool, 'alice')).toEqual([]);
    expect(await revokeApiKey(db.pool, row.id, 'alice')).toBe(false); // not hers
    expect(await revokeApiKey(db.pool, row.id, 'dave')).toBe(true);
    expect(await findApiKey(db.pool, key)).toBeNull();
    expect(await revokeApiKey(db.pool, row.id, null)).toBe(false); // already revoked
  });

  it("act with no more than their owner's role", async () => {
    await createUser(db.pool, 'hank', 'hank password', 'admin');
    const { key } = await createApiKey(db.pool, 'hank', 'deploy', 'admin');
    expect(await findApiKey(db.pool, key)).toMatchObject({ role: 'admin' });
    await setUserRole(db.pool, 'hank', 'viewer');
    expect(await findApiKey(db.pool, key)).toMatchObject({ role: 'viewer' });
    await setUserRole(db.pool, 'hank', 'trader');
    expect(await findApiKey(db.pool, key)).toMatchObject({ role: 'trader' });
  });

  it('of a disabled owner do not match', async () => {
    await createUser(db.pool, 'erin', 'erin password', 'trader');
    const { key } = await createApiKey(db.pool, 'erin', 'bot', 'trader');
    await disableUser(db.pool, 'erin');
    expect(await findApiKey(db.pool, key)).toBeNull();
  });
});

describe('refresh tokens', () => {
  it('work once, rotate, and a reused one revokes its whole family', async () => {
    await createUser(db.pool, 'frank', 'frank password', 'viewer');
    const t0 = await issueRefreshToken(db.pool, 'frank', 60_000);
    const r1 = await rotateRefreshToken(db.pool, t0, 60_000);
    expect(r1).toMatchObject({ ok: true, username: 'frank', role: 'viewer' });
    if (!r1.ok) throw new Error('unreachable');
    expect(r1.token).not.toBe(t0);
    // t0 again: a replay. The family (t1 included) is revoked.
    expect(await rotateRefreshToken(db.pool, t0, 60_000)).toMatchObject({ ok: false, reason: 'reused' });
    expect(await rotateRefreshToken(db.pool, r1.token, 60_000)).toMatchObject({
      ok: false,
      reason: 'revoked',
    });
    const { rows } = await db.pool.query('SELECT token_hash FROM refresh_tokens WHERE username = $1', [
      'frank',
    ]);
    expect(rows.every((r) => !r.token_hash.includes(t0.slice(4)))).toBe(true);
  });

  it('expire, end with logout, and stop for a disabled user', async () => {
    await createUser(db.pool, 'gina', 'gina password', 'viewer');
    const expired = await issueRefreshToken(db.pool, 'gina', 1);
    await db.pool.query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'");
    expect(await rotateRefreshToken(db.pool, expired, 60_000)).toMatchObject({ reason: 'expired' });
    const t = await issueRefreshToken(db.pool, 'gina', 60_000);
    expect(await revokeRefreshFamily(db.pool, t)).toBe(true);
    expect(await rotateRefreshToken(db.pool, t, 60_000)).toMatchObject({ reason: 'revoked' });
    const u = await issueRefreshToken(db.pool, 'gina', 60_000);
    await disableUser(db.pool, 'gina');
    // Disabling revokes the user's tokens; one issued after it is refused as well.
    expect(await rotateRefreshToken(db.pool, u, 60_000)).toMatchObject({ reason: 'revoked' });
    const late = await issueRefreshToken(db.pool, 'gina', 60_000);
    expect(await rotateRefreshToken(db.pool, late, 60_000)).toMatchObject({ reason: 'disabled' });
    expect(await rotateRefreshToken(db.pool, 'tmr_unknown', 60_000)).toMatchObject({ reason: 'unknown' });
  });
});

describe('audit log', () => {
  it('keeps entries without their secrets, newest first, within a time range', async () => {
    await appendAudit(db.pool, {
      actor: 'alice',
      role: 'trader',
      operation: 'login',
      arguments: { username: 'alice', password: 'correct horse' },
      result: 'ok',
      address: '127.0.0.1',
    });
    await appendAudit(db.pool, {
      actor: 'alice',
      role: 'trader',
      operation: 'createAlertRule',
      arguments: { input: { webhook: { url: 'https://example.com', secret: 'sixteen-chars-secret' } } },
      result: 'TM_ERR_FORBIDDEN',
      address: '127.0.0.1',
    });
    const all = await readAudit(db.pool, { from: null, to: null, limit: 10 });
    expect(all.map((e) => [e.operation, e.result])).toEqual([
      ['createAlertRule', 'TM_ERR_FORBIDDEN'],
      ['login', 'ok'],
    ]);
    expect(JSON.stringify(all)).not.toMatch(/correct horse|sixteen-chars-secret/);
    expect(await readAudit(db.pool, { from: new Date(Date.now() + 60_000), to: null, limit: 10 })).toEqual(
      [],
    );
    expect(await readAudit(db.pool, { from: null, to: null, limit: 1 })).toHaveLength(1);
  });
});
