/** `tickmesh users …` against a real database, as an operator runs it. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLogin } from '../core/users-store.ts';
import { freshDatabase, type TestDb } from '../test/support/infra.ts';

const BIN = fileURLToPath(new URL('../bin/tickmesh.js', import.meta.url));
const run = promisify(execFile);

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db?.[Symbol.asyncDispose]());

async function users(args: string[], stdin?: string): Promise<string> {
  const p = run(process.execPath, [BIN, 'users', ...args], {
    env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'warn' },
  });
  if (stdin !== undefined) p.child.stdin?.end(stdin);
  else p.child.stdin?.end();
  return (await p).stdout;
}

describe('tickmesh users', () => {
  it('adds, lists, changes the role of, resets and disables users', async () => {
    expect(await users(['add', 'ops', 'viewer'], 'password from stdin\n')).toMatch(/^ops\tviewer\tenabled\t/);
    expect(await verifyLogin(db.pool, 'ops', 'password from stdin')).toMatchObject({ role: 'viewer' });
    await users(['add', 'quant', 'trader', '--password', 'password on the line']);
    expect(await users(['set-role', 'ops', 'admin'])).toMatch(/^ops\tadmin\t/);
    await users(['reset-password', 'quant'], 'a new password\n');
    expect(await verifyLogin(db.pool, 'quant', 'a new password')).toMatchObject({ role: 'trader' });
    expect(await users(['disable', 'quant'])).toMatch(/^quant\ttrader\tdisabled\t/);
    const list = await users(['list']);
    expect(
      list
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t').slice(0, 3)),
    ).toEqual([
      ['ops', 'admin', 'enabled'],
      ['quant', 'trader', 'disabled'],
    ]);
    expect(list).not.toMatch(/password|argon2/);
  });

  it('fails with one line for a bad role', async () => {
    await expect(users(['add', 'x', 'root', '--password', 'long enough'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/^tickmesh: .*role/),
    });
  });
});
