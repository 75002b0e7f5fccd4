/**
 * Secrets `npm start` makes for itself: the JWT key, the key of secrets at rest and a first admin
 * password, each generated on first start into `<data>/secrets/` (mode 600, folder 700) and
 * read back afterwards. A variable that is set (TICKMESH_JWT_SECRET, …) wins over its file.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSecretKey } from '../core/secret-box.ts';

export interface DevSecrets {
  /** Variables to add to the environment the roles' config is loaded from. */
  env: Record<string, string>;
  /** The generated admin password (null when TICKMESH_ADMIN_PASSWORD is set) and its file. */
  generatedAdmin: { user: string; password: string; file: string } | null;
}

/** The file's content, or `make()` written to it first (0600 from the start, no window). */
function keptIn(file: string, make: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const value = make();
  writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  return value;
}

export function devSecrets(dataDir: string, env: NodeJS.ProcessEnv): DevSecrets {
  const dir = join(dataDir, 'secrets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const out: Record<string, string> = {};
  if (!env.TICKMESH_JWT_SECRET)
    out.TICKMESH_JWT_SECRET = keptIn(join(dir, 'jwt-secret'), () => randomBytes(32).toString('hex'));
  if (!env.TICKMESH_SECRET_KEY) out.TICKMESH_SECRET_KEY = keptIn(join(dir, 'secret-key'), generateSecretKey);
  let generatedAdmin: DevSecrets['generatedAdmin'] = null;
  if (!env.TICKMESH_ADMIN_PASSWORD) {
    const file = join(dir, 'admin-password');
    const password = keptIn(file, () => randomBytes(15).toString('base64url'));
    generatedAdmin = { user: env.TICKMESH_ADMIN_USER || 'admin', password, file };
  }
  return { env: out, generatedAdmin };
}
