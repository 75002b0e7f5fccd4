import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// Recorded market data (../shared/data) is not part of the repository: its test tier joins the
// run only where the folder exists, so the suite passes without it and nothing is skipped.
// The multi-process chaos test (~4 min) runs with the integration tier (files run one at a time
// there, so it has the machine to itself); TICKMESH_CHAOS=0 leaves it out of a quick local run.
const chaos = process.env.TICKMESH_CHAOS !== '0';
const recorded = existsSync(
  new URL('../shared/data/binance-XRP_ETH-trades-2019-10.json.gz', import.meta.url),
);

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'core/**/*.test.ts',
            'actors/**/*.test.ts',
            'supervisor/**/*.test.ts',
            'graphql/**/*.test.ts',
            'launcher/**/*.test.ts',
            'analytics/**/*.test.ts',
            'ui/src/**/*.test.ts',
          ],
          exclude: ['**/*.int.test.ts', '**/node_modules/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['**/*.int.test.ts', 'test/**/*.test.ts'],
          exclude: [
            '**/node_modules/**',
            'ui/**',
            ...(recorded ? [] : ['test/recorded/**']),
            ...(chaos ? [] : ['test/chaos.int.test.ts']),
          ],
          globalSetup: ['test/setup/global.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
