// Headless Chromium for browser tests of the built dashboard. Uses the Debian `chromium`
// package (apt-get install chromium) through playwright-core; no browser is downloaded.
import { type Browser, chromium, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Mirrors window.__tickmesh in ui/src/probe.ts (tests do not import from ui/). */
export interface TickmeshProbe {
  series: string | null;
  candlesLoaded: number;
  liveUpdates: number;
  lastBarTime: number | null;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * Opens the dashboard and resolves once its subscription socket reads `live`. On timeout the
 * error carries the last connection state and the page's console errors, which usually say
 * why (gateway down, schema mismatch, a thrown render error).
 */
export async function openDashboard(
  browser: Browser,
  url: string,
  /** The access token the page sends (it has no login page yet: the test signs in for it). */
  token: string,
  timeoutMs = 15_000,
): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.addInitScript(
    ([key, value]) => window.localStorage.setItem(key!, value!),
    ['tickmeshAccessToken', token],
  );
  await recordCspViolations(page);
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  try {
    await page.goto(url);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="connection-state"]')?.textContent?.trim() === 'live',
      undefined,
      { timeout: timeoutMs },
    );
    return page;
  } catch (cause) {
    const state = await page
      .locator('[data-testid="connection-state"]')
      .textContent({ timeout: 1000 })
      .catch(() => null);
    await page.close();
    throw new Error(
      `dashboard at ${url} did not go live within ${timeoutMs} ms (connection-state: ${state ?? 'absent'}); ` +
        `page errors: ${problems.length ? problems.join(' | ') : 'none'}`,
      { cause },
    );
  }
}

/** Collects the page's Content-Security-Policy violations from its first script on (see cspViolations). */
export async function recordCspViolations(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __cspViolations: string[] }).__cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (e) =>
      seen.push(
        `${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`,
      ),
    );
  });
}

/** What the gateway's CSP blocked on this page so far (empty when the dashboard works under it). */
export function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __cspViolations?: string[] }).__cspViolations ?? []);
}

export function readProbe(page: Page): Promise<TickmeshProbe | null> {
  return page.evaluate(() => (window as unknown as { __tickmesh?: TickmeshProbe }).__tickmesh ?? null);
}

/** Waits until the chart has history and at least `liveUpdates` live candles applied. */
export async function waitForLiveChart(
  page: Page,
  liveUpdates = 1,
  timeoutMs = 15_000,
): Promise<TickmeshProbe> {
  const handle = await page.waitForFunction(
    (min) => {
      const p = (window as unknown as { __tickmesh?: TickmeshProbe }).__tickmesh;
      return p && p.candlesLoaded > 0 && p.liveUpdates >= min ? p : null;
    },
    liveUpdates,
    { timeout: timeoutMs },
  );
  return (await handle.jsonValue()) as TickmeshProbe;
}
