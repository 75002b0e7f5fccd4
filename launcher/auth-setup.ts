/**
 * What every role does for auth when it starts: create or reset the admin named by
 * TICKMESH_ADMIN_USER / TICKMESH_ADMIN_PASSWORD, and seal webhook secrets still stored in
 * plaintext (rules written before secrets were encrypted) with TICKMESH_SECRET_KEY.
 */
import { sealWebhookSecrets } from '../core/alert-rules-store.ts';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { parseSecretKey, sealSecret } from '../core/secret-box.ts';
import { readUser, upsertUser, verifyLogin } from '../core/users-store.ts';

export async function prepareAuth(pool: Pool, cfg: Config, log: Logger): Promise<void> {
  const { adminUser, adminPassword, secretKey } = cfg.auth;
  if (adminPassword) {
    if ((await upsertUser(pool, adminUser, adminPassword, 'admin')).changed)
      log.info({ user: adminUser }, 'admin user created or reset from TICKMESH_ADMIN_PASSWORD');
  }
  if (secretKey) {
    const key = parseSecretKey(secretKey);
    const sealed = await sealWebhookSecrets(pool, (s) => sealSecret(key, s));
    if (sealed) log.info({ rules: sealed }, 'webhook secrets stored in plaintext are now encrypted');
  }
}

/**
 * The first admin of `npm start`: created with the generated password only if missing (a
 * password changed since stays). Returns whether the generated password signs that user in, so
 * the banner never prints one that does not work.
 */
export async function ensureFirstAdmin(pool: Pool, user: string, password: string): Promise<boolean> {
  if (!(await readUser(pool, user))) {
    await upsertUser(pool, user, password, 'admin');
    return true;
  }
  return (await verifyLogin(pool, user, password)) !== null;
}
