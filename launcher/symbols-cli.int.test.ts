/** `tickmesh symbols …` against a real database: the same grammar and quota as GraphQL. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../test/support/infra.ts';

const BIN = fileURLToPath(new URL('../bin/tickmesh.js', import.meta.url));
const run = promisify(execFile);

let db: TestDb;
let configFile: string;
beforeAll(async () => {
  db = await freshDatabase();
  await db.pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ('feed', 'feed', 'external')`);
  configFile = join(mkdtempSync(join(tmpdir(), 'tm-symbols-')), 'config.json');
  writeFileSync(configFile, JSON.stringify({ symbols: { maxActivePerExchange: 2 } }));
});
afterAll(async () => db?.[Symbol.asyncDispose]());

async function symbols(args: string[]): Promise<string> {
  const p = run(process.execPath, [BIN, 'symbols', ...args], {
    env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'warn', TICKMESH_CONFIG: configFile },
  });
  p.child.stdin?.end();
  return (await p).stdout;
}

describe('tickmesh symbols', () => {
  it('adds within the grammar and the quota, and removes idempotently', async () => {
    expect(await symbols(['add', 'feed', 'BTC/USDT', '^GSPC'])).toBe(
      'feed\tBTC/USDT\tactive\nfeed\t^GSPC\tactive\n',
    );
    await expect(symbols(['add', 'feed', 'ВТС/USDT'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/^tickmesh: .*non-ASCII character U\+0412/),
    });
    await expect(symbols(['add', 'feed', 'ETH/USDT'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/^tickmesh: .*maximum of 2/),
    });
    expect(await symbols(['remove', 'feed', '^GSPC', '^GSPC'])).toBe(
      'feed\t^GSPC\tremoved\nfeed\t^GSPC\tabsent\n',
    );
    const { rows } = await db.pool.query('SELECT symbol, active FROM symbols ORDER BY symbol');
    expect(rows).toEqual([{ symbol: 'BTC/USDT', active: true }]);
  });
});
