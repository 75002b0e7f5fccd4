import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NATS_PRINCIPALS } from '../core/nats-permissions.ts';
import {
  authorizationFromEnvironment,
  ensurePasswords,
  SHIPPED_AUTH_DIRS,
  writeServerConfig,
} from './nats-auth.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('NATS server authorization', () => {
  it('ships the users of core/nats-permissions.ts to compose and Kubernetes, passwords from the environment', () => {
    for (const dir of SHIPPED_AUTH_DIRS) {
      expect(
        readFileSync(join(ROOT, dir, 'auth.conf'), 'utf8'),
        `${dir}/auth.conf is stale: run npm run codegen`,
      ).toBe(authorizationFromEnvironment());
      expect(readFileSync(join(ROOT, dir, 'nats.conf'), 'utf8'), `${dir}/nats.conf`).toMatch(
        /^include \.\/auth\.conf$/m,
      );
    }
    for (const p of NATS_PRINCIPALS)
      expect(authorizationFromEnvironment()).toContain(`password: $NATS_PASSWORD_${p.toUpperCase()}\n`);
  });

  it('makes random passwords once (mode 600) and keeps them; the config carries them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickmesh-nats-auth-'));
    try {
      const first = ensurePasswords(dir);
      expect(Object.keys(first).sort()).toEqual([...NATS_PRINCIPALS].sort());
      expect(new Set(Object.values(first)).size).toBe(NATS_PRINCIPALS.length);
      expect(ensurePasswords(dir)).toEqual(first);
      const conf = writeServerConfig(dir, first);
      for (const file of [conf, join(dir, 'credentials.json')])
        expect(statSync(file).mode & 0o777, file).toBe(0o600);
      const text = readFileSync(conf, 'utf8');
      for (const p of NATS_PRINCIPALS) expect(text).toContain(`password: ${JSON.stringify(first[p])}\n`);
      expect(text).not.toContain('$NATS_PASSWORD');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
