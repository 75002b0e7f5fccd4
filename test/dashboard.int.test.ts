/**
 * The built dashboard in headless Chromium against the running system: history from the
 * candles query, then live updates from the graphql-ws subscription, and a timeframe switch.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cspViolations,
  launchChromium,
  openDashboard,
  readProbe,
  waitForLiveChart,
} from './browser/chromium.ts';
import { signIn } from './support/graphql.ts';
import { startSystem, type TestSystem } from './support/system.ts';

describe('dashboard in Chromium', () => {
  let sys: TestSystem;
  let browser: Browser;

  beforeAll(async () => {
    sys = await startSystem({
      config: { sim: { enabled: true, rate: 50 } },
      // History for the chart: 60 closed bars before the current minute.
      beforeRoles: async (pool) => {
        const now = Math.floor(Date.now() / 60_000) * 60_000;
        await pool.query(
          `INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume, trades)
           SELECT 'sim', 'BTC/USDT', '1m', to_timestamp(($1::float8 - i * 60000) / 1000),
                  60000 + i, 60010 + i, 59990 + i, 60005 + i, 1 + i, 10
             FROM generate_series(1, 60) AS i`,
          [now],
        );
      },
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await sys?.stop();
  });

  it('shows history, then live candles, and follows a timeframe switch', async () => {
    // The page has no login yet (issue 12): the test signs in and hands it the token.
    const { token } = await signIn(sys.base);
    const page = await openDashboard(
      browser,
      `${sys.base}/?exchange=sim&symbol=BTC%2FUSDT&timeframe=1m`,
      token,
    );
    const probe = await waitForLiveChart(page, 3, 20_000);
    expect(probe.series).toBe('sim:BTC/USDT:1m');
    expect(probe.candlesLoaded).toBeGreaterThanOrEqual(60);
    const price = Number(await page.getByTestId('last-price').getAttribute('data-value'));
    expect(price).toBeGreaterThan(0);
    await page.getByTestId('timeframe-select').selectOption('5m');
    await page.waitForFunction(
      () => {
        const p = (window as unknown as { __tickmesh?: { series: string; liveUpdates: number } }).__tickmesh;
        return p?.series === 'sim:BTC/USDT:5m' && p.liveUpdates >= 2;
      },
      undefined,
      { timeout: 15_000 },
    );
    expect((await readProbe(page))?.series).toBe('sim:BTC/USDT:5m');
    // Everything above ran under the gateway's Content-Security-Policy without a violation.
    expect(await cspViolations(page)).toEqual([]);
    await page.screenshot({ path: `${process.env.TMPDIR ?? '/tmp'}/tickmesh-dashboard.png` });
    await page.close();
  });
});
