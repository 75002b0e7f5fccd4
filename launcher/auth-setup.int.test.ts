/** Start-up auth: the admin bootstrap and sealing webhook secrets stored in plaintext. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuleDeliveryInfo } from '../core/alert-rules-store.ts';
import { loadConfig } from '../core/config.ts';
import { isSealed, openSecret, parseSecretKey } from '../core/secret-box.ts';
import { readUser, verifyLogin } from '../core/users-store.ts';
import { freshDatabase, TEST_AUTH, type TestDb, testLog } from '../test/support/infra.ts';
import { ensureFirstAdmin, prepareAuth } from './auth-setup.ts';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db?.[Symbol.asyncDispose]());

describe('role start-up', () => {
  it('creates the admin from TICKMESH_ADMIN_PASSWORD, and resets it on the next start', async () => {
    const cfg = (password: string) =>
      loadConfig({ TICKMESH_ADMIN_USER: 'root', TICKMESH_ADMIN_PASSWORD: password });
    await prepareAuth(db.pool, cfg('first admin password'), testLog);
    expect(await verifyLogin(db.pool, 'root', 'first admin password')).toMatchObject({ role: 'admin' });
    await db.pool.query("UPDATE users SET role = 'viewer', disabled_at = now() WHERE username = 'root'");
    await prepareAuth(db.pool, cfg('second admin password'), testLog);
    expect(await verifyLogin(db.pool, 'root', 'first admin password')).toBeNull();
    expect(await verifyLogin(db.pool, 'root', 'second admin password')).toMatchObject({ role: 'admin' });
  });

  it("creates npm start's generated admin only when missing (a changed password stays)", async () => {
    expect(await ensureFirstAdmin(db.pool, 'admin', 'generated password')).toBe(true);
    // The same password again still signs in (the banner may print it); another one does not
    // (the banner must not print it: a cluster reused by a new clone keeps its admin).
    expect(await ensureFirstAdmin(db.pool, 'admin', 'generated password')).toBe(true);
    expect(await ensureFirstAdmin(db.pool, 'admin', 'another generated')).toBe(false);
    expect(await verifyLogin(db.pool, 'admin', 'generated password')).not.toBeNull();
    expect(await readUser(db.pool, 'admin')).toMatchObject({ role: 'admin' });
  });

  it('seals webhook secrets stored in plaintext, once', async () => {
    await db.pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ('sim', 'sim', 'sim')`);
    await db.pool.query(`INSERT INTO symbols (exchange, symbol) VALUES ('sim', 'BTC/USDT')`);
    await db.pool.query(
      `INSERT INTO alert_rules (id, exchange, symbol, condition, threshold, channels)
       VALUES ('r-old', 'sim', 'BTC/USDT', 'PRICE_ABOVE', 1, $1), ('r-slack', 'sim', 'BTC/USDT', 'PRICE_ABOVE', 1, $2)`,
      [
        JSON.stringify({ webhook: { url: 'https://example.com/h', secret: 'plaintext-secret-16' } }),
        JSON.stringify({ slack: { url: 'https://example.com/s' } }),
      ],
    );
    const cfg = loadConfig({ TICKMESH_SECRET_KEY: TEST_AUTH.secretKey });
    await prepareAuth(db.pool, cfg, testLog);
    const stored = await readRuleDeliveryInfo(db.pool, ['r-old', 'r-slack']);
    const secret = stored.get('r-old')!.channels.webhook!.secret;
    expect(isSealed(secret)).toBe(true);
    expect(openSecret(parseSecretKey(TEST_AUTH.secretKey), secret)).toBe('plaintext-secret-16');
    expect(stored.get('r-slack')!.channels).toEqual({ slack: { url: 'https://example.com/s' } });
    await prepareAuth(db.pool, cfg, testLog);
    expect((await readRuleDeliveryInfo(db.pool, ['r-old'])).get('r-old')!.channels.webhook!.secret).toBe(
      secret,
    );
  });
});
