import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSecretKey } from '../core/secret-box.ts';
import { devSecrets } from './dev-secrets.ts';

const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tm-secrets-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('npm start secrets', () => {
  it('are generated on first start into mode-600 files and read back afterwards', () => {
    const dir = dataDir();
    const first = devSecrets(dir, {});
    expect(first.env.TICKMESH_JWT_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(() => parseSecretKey(first.env.TICKMESH_SECRET_KEY!)).not.toThrow();
    expect(first.generatedAdmin).toMatchObject({ user: 'admin' });
    expect(first.generatedAdmin!.password.length).toBeGreaterThanOrEqual(16);
    for (const f of ['jwt-secret', 'secret-key', 'admin-password'])
      expect(statSync(join(dir, 'secrets', f)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, 'secrets', 'admin-password'), 'utf8').trim()).toBe(
      first.generatedAdmin!.password,
    );
    expect(devSecrets(dir, {})).toEqual(first);
  });

  it('are not generated where the environment sets them', () => {
    const dir = dataDir();
    const s = devSecrets(dir, {
      TICKMESH_JWT_SECRET: 'x'.repeat(32),
      TICKMESH_SECRET_KEY: 'k',
      TICKMESH_ADMIN_PASSWORD: 'given-password',
    });
    expect(s).toEqual({ env: {}, generatedAdmin: null });
    expect(devSecrets(dir, { TICKMESH_ADMIN_USER: 'root' }).generatedAdmin?.user).toBe('root');
  });
});
