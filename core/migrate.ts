/** Applies migrations/ with node-pg-migrate (advisory-locked, so concurrent runs are safe). */
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from './log.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export async function migrate(databaseUrl: string, log: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    count: Number.POSITIVE_INFINITY,
    checkOrder: true,
    log: (msg: string) => log.debug({ migrate: msg }),
    logger: {
      debug: () => {},
      info: (m: string) => log.debug(m),
      warn: (m: string) => log.warn(m),
      error: (m: string) => log.error(m),
    },
  });
  const names = applied.map((m) => m.name);
  if (names.length) log.info({ applied: names }, 'migrations applied');
  return names;
}
