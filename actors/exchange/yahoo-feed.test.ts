/**
 * The Yahoo feed with the real yahoo-finance2 against a local fake of Yahoo's endpoints
 * (test/fakes/fake-yahoo.ts), timed by a FakeClock. The fake's "now" follows the clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../core/clock.ts';
import { parseStoredOptions, type YahooExchangeOptions } from '../../core/exchanges-config.ts';
import { createLogger } from '../../core/log.ts';
import { SCHEMA_VERSION, validateFeedMessage } from '../../core/protocol/index.ts';
import { parseRetryAfter } from '../../core/retry-after.ts';
import {
  type FakeCandle,
  type FakeYahoo,
  type FakeYahooOptions,
  startFakeYahoo,
} from '../../test/fakes/fake-yahoo.ts';
import { type SourceBar, YahooFeed, type YahooFeedOptions } from './yahoo-feed.ts';

const MIN = 60_000;
const SETTLE = 2000;
const utc = (iso: string) => Date.parse(iso);
const log = createLogger('silent');

/** A deterministic 1m series; `nulls` are minutes Yahoo reports with null prices. */
function series(from: number, minutes: number, nulls: number[] = []): FakeCandle[] {
  return Array.from({ length: minutes }, (_, i) => {
    const t = from + i * MIN;
    if (nulls.includes(t)) return { t, o: null, h: null, l: null, c: null, vol: null };
    const o = 100 + ((i * 37) % 11) / 4;
    const c = o + (((i * 13) % 7) - 3) / 8;
    return { t, o, h: Math.max(o, c) + 0.25, l: Math.min(o, c) - 0.25, c, vol: 1000 + ((i * 7919) % 500) };
  });
}

/** The series' bars that were complete (minute + settle over) at a time. */
const completedAt = (candles: FakeCandle[], at: number): SourceBar[] =>
  candles.filter((k) => k.o !== null && k.t + MIN + SETTLE <= at).map(asBar);

/** When the fake last answered a chart request with 200. */
const lastOkAt = (fake: FakeYahoo) => fake.requests.filter((r) => r.status === 200).at(-1)!.at;

function asBar(k: FakeCandle): SourceBar {
  return { t: k.t, o: k.o!, h: k.h!, l: k.l!, c: k.c!, vol: k.vol! };
}

interface Harness {
  clock: FakeClock;
  fake: FakeYahoo;
  feed: YahooFeed;
  got: Map<string, SourceBar[]>;
  /** Sizes of the sink calls, per symbol ('gap' for a lost window). */
  calls: Map<string, (number | 'gap')[]>;
  /** Lost windows reported, per symbol. */
  gaps: Map<string, { from: number; to: number }[]>;
  /** Advances the clock to `until` in steps, letting the feed finish its requests after each. */
  runTo(until: number, stepMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const harnesses: Harness[] = [];

/** A yahoo exchange entry as the worker gets it: parsed by the exchanges file's schema. */
function yahooEntry(entry: Record<string, unknown> = {}): YahooExchangeOptions {
  const parsed = parseStoredOptions('yahoo', { pollIntervalMs: MIN, ...entry });
  if (parsed.kind !== 'yahoo') throw new Error('not a yahoo entry');
  return parsed;
}

async function harness(
  start: number,
  symbols: string[],
  candles: Record<string, FakeCandle[]>,
  opts: Partial<Omit<YahooFeedOptions, 'exchange'>> & { entry?: Record<string, unknown> } = {},
  setup?: (fake: FakeYahoo) => void,
  fakeOpts: FakeYahooOptions = {},
  /** The first this many onGap calls of the sink fail. */
  failGaps = 0,
): Promise<Harness> {
  const clock = new FakeClock(start);
  const fake = await startFakeYahoo({ now: () => clock.now(), ...fakeOpts });
  for (const [sym, ks] of Object.entries(candles)) fake.setSeries(sym, ks);
  setup?.(fake);
  const got = new Map<string, SourceBar[]>();
  const calls = new Map<string, (number | 'gap')[]>();
  const gaps = new Map<string, { from: number; to: number }[]>();
  const { entry, ...rest } = opts;
  const feed = new YahooFeed(
    { exchange: yahooEntry(entry), symbols, clock, log, yahoo: fake.client(), ...rest },
    {
      async onBars(symbol, bars) {
        // Never a bar whose minute (plus the settle time) has not ended.
        for (const b of bars) expect(b.t + MIN + SETTLE).toBeLessThanOrEqual(clock.now());
        // Every batch passes the protocol's source-bar validation whole.
        const checked = validateFeedMessage({ v: SCHEMA_VERSION, ex: 'yahoo', sym: symbol, bars });
        expect(checked.ok && checked.value.kind === 'bars' && checked.value.rejected).toEqual([]);
        got.set(symbol, [...(got.get(symbol) ?? []), ...bars]);
        calls.set(symbol, [...(calls.get(symbol) ?? []), bars.length]);
      },
      async onGap(symbol, gap) {
        if (failGaps-- > 0) throw new Error('gap not stored');
        gaps.set(symbol, [...(gaps.get(symbol) ?? []), { from: gap.from, to: gap.to }]);
        calls.set(symbol, [...(calls.get(symbol) ?? []), 'gap']);
      },
    },
  );
  const ac = new AbortController();
  const done = feed.start(ac.signal);
  // Every symbol's loop parks on exactly one clock timer between requests.
  const settle = () =>
    vi.waitFor(() => expect(clock.pendingTimers()).toBe(symbols.length), { timeout: 5000, interval: 2 });
  await settle();
  const h: Harness = {
    clock,
    fake,
    feed,
    got,
    calls,
    gaps,
    async runTo(until, stepMs = 10_000) {
      while (clock.now() < until) {
        clock.advance(Math.min(stepMs, until - clock.now()));
        await settle();
      }
    },
    async stop() {
      ac.abort();
      await done;
      await fake.close();
    },
  };
  harnesses.push(h);
  return h;
}

beforeEach(() => {
  // yahoo-finance2 prints the URL of every non-2xx answer with console.error.
  vi.spyOn(console, 'error').mockImplementation(() => {});
});

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.stop();
  vi.restoreAllMocks();
});

describe('YahooFeed', () => {
  it('emits every completed 1m bar exactly once, equal to the series, skipping null rows', async () => {
    const open = utc('2025-03-11T13:30:00Z'); // 09:30 New York (EDT)
    const nulls = [open + 7 * MIN, open + 8 * MIN];
    const candles = series(open, 60, nulls);
    // Yahoo sometimes gives a high below the open; the feed widens it and counts the repair.
    candles[12] = { ...candles[12]!, h: candles[12]!.o! - 0.1 };
    const h = await harness(open - 60_000, ['AAPL'], { AAPL: candles }, { since: open });
    expect(h.feed.health().AAPL).toMatchObject({ state: 'market-closed', closedReason: 'before-open' });
    expect(h.fake.counters.chart).toBe(0);

    await h.runTo(open + 40 * MIN + 5000, 1000);
    const got = h.got.get('AAPL')!;
    const want = completedAt(candles, lastOkAt(h.fake)).map((b) =>
      b.t === candles[12]!.t ? { ...b, h: b.o } : b,
    );
    expect(got).toEqual(want);
    // Polls run two seconds past each minute: 14:10:02 completes 13:30 … 14:09, minus two null minutes.
    expect(lastOkAt(h.fake)).toBe(open + 40 * MIN + SETTLE);
    expect(got.length).toBe(38);
    expect(new Set(got.map((b) => b.t)).size).toBe(got.length);
    const health = h.feed.health().AAPL!;
    expect(health).toMatchObject({
      state: 'polling',
      circuit: 'closed',
      lastBarT: got.at(-1)!.t,
      bars: got.length,
      errors: 0,
      repaired: 1,
      closesAt: utc('2025-03-11T20:00:00Z'),
    });
    // Each request starts after the last emitted bar: the 14:10:02 poll asked from 14:09.
    const last = h.fake.requests.at(-1)!;
    expect(Number(last.query.period1) * 1000).toBe(got.at(-2)!.t + MIN);
    expect(last.query).toMatchObject({ interval: '1m', includePrePost: 'false' });
  });

  it('polls once after an early close for the final bar, then idles until the next session', async () => {
    const close = utc('2025-07-03T17:00:00Z'); // 13:00 New York, Independence Day eve
    const candles = series(close - 10 * MIN, 30); // extends into the post-market
    const h = await harness(close - 10 * MIN, ['AAPL'], { AAPL: candles }, { since: close - 10 * MIN });
    await h.runTo(close + 30 * MIN);
    const got = h.got.get('AAPL')!;
    expect(got.map((b) => b.t)).toEqual(candles.slice(0, 10).map((k) => k.t));
    expect(got.at(-1)).toEqual(asBar(candles[9]!)); // the 12:59 bar, from the after-close poll
    const after = h.fake.requests.filter((r) => r.at > close);
    expect(after.length).toBe(1);
    expect(after[0]!.at - close).toBeGreaterThanOrEqual(SETTLE);
    expect(after[0]!.at - close).toBeLessThanOrEqual(SETTLE + 10_000);
    expect(h.feed.health().AAPL).toMatchObject({
      state: 'market-closed',
      closedReason: 'early-close',
      nextOpen: utc('2025-07-07T13:30:00Z'), // July 4 holiday, then the weekend
    });
  });

  it('makes no request for a NYSE holiday', async () => {
    const h = await harness(utc('2025-07-04T15:00:00Z'), ['AAPL'], { AAPL: [] });
    await h.runTo(utc('2025-07-04T18:00:00Z'), 30 * MIN);
    expect(h.fake.counters.requests).toBe(0);
    expect(h.feed.health().AAPL).toMatchObject({
      state: 'market-closed',
      closedReason: 'holiday',
      nextOpen: utc('2025-07-07T13:30:00Z'),
      requests: 0,
    });
  });

  it('follows THYAO.IS 15 minutes behind, as Yahoo serves BIST, and idles it outside 10:00–18:00 Istanbul', async () => {
    const close = utc('2025-03-11T15:00:00Z'); // 18:00 Istanbul (UTC+3)
    const nextOpen = utc('2025-03-12T07:00:00Z');
    const delay = 15 * MIN;
    const candles = [...series(close - 30 * MIN, 30), ...series(nextOpen, 30)];
    const h = await harness(
      close - 30 * MIN,
      ['THYAO.IS', 'BTC-USD'],
      {
        'THYAO.IS': candles,
        'BTC-USD': series(close - 30 * MIN, 60 * 17),
      },
      { since: close - 30 * MIN },
    );
    // In the session: only the minutes complete 15 minutes ago, never Yahoo's delayed forming
    // minute (its partial values would differ from the series).
    await h.runTo(close - 5 * MIN + 30_000);
    expect(h.feed.health()['THYAO.IS']).toMatchObject({ calendar: 'BIST', delayMs: delay, state: 'polling' });
    expect(h.feed.health()['BTC-USD']!.delayMs).toBe(0);
    expect(h.got.get('THYAO.IS')).toEqual(completedAt(candles, close - 5 * MIN + 30_000 - delay));
    expect(h.got.get('THYAO.IS')).toHaveLength(10); // 17:30 … 17:39 Istanbul
    // After the close the feed waits for the delayed last minute before its final poll.
    await h.runTo(close + 10 * MIN);
    expect(h.feed.health()['THYAO.IS']!.state).toBe('polling');
    await h.runTo(close + delay + 5 * MIN);
    expect(h.feed.health()['THYAO.IS']).toMatchObject({
      state: 'market-closed',
      closedReason: 'after-close',
      nextOpen,
      lastBarT: close - MIN,
    });
    expect(h.got.get('THYAO.IS')).toEqual(completedAt(candles, close + MIN));
    const atClose = h.fake.counters.chartBySymbol['THYAO.IS']!;
    // The night, in bigger steps: the crypto symbol keeps polling, the BIST one sleeps.
    await h.runTo(nextOpen - MIN, 5 * MIN);
    expect(h.fake.counters.chartBySymbol['THYAO.IS']).toBe(atClose);
    expect(h.fake.counters.chartBySymbol['BTC-USD']).toBeGreaterThan(100);
    expect(h.feed.health()['BTC-USD']).toMatchObject({ calendar: '24x7', state: 'polling' });
    await h.runTo(nextOpen + delay + 5 * MIN + 5000);
    expect(h.fake.counters.chartBySymbol['THYAO.IS']).toBeGreaterThan(atClose);
    const got = h.got.get('THYAO.IS')!;
    expect(got).toEqual(completedAt(candles, nextOpen + 5 * MIN + 5000));
    expect(got.length).toBe(35); // thirty before the close, five after the open
    expect(h.feed.health()['THYAO.IS']!.state).toBe('polling');
  });

  it('takes a delayed market in real time when told its data is not delayed', async () => {
    const open = utc('2025-03-11T07:00:00Z');
    const candles = series(open, 60);
    const h = await harness(
      open,
      ['THYAO.IS'],
      { 'THYAO.IS': candles },
      { since: open, entry: { dataDelayMs: { BIST: 0 } } },
      undefined,
      { realTime: true },
    );
    await h.runTo(open + 10 * MIN + 5000);
    expect(h.feed.health()['THYAO.IS']!.delayMs).toBe(0);
    expect(h.got.get('THYAO.IS')).toEqual(completedAt(candles, open + 10 * MIN + 5000));
    expect(h.got.get('THYAO.IS')).toHaveLength(10);
  });

  it('backs off on 5xx and recovers without missing a bar', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    const candles = series(open, 40);
    const h = await harness(open, ['AAPL'], { AAPL: candles }, { since: open });
    await h.runTo(open + 5 * MIN + 5000);
    h.fake.controls.fail5xx(3);
    await h.runTo(open + 6 * MIN + 5000);
    expect(h.feed.health().AAPL).toMatchObject({
      state: 'backoff',
      circuit: 'closed',
      consecutiveFailures: 1,
    });
    expect(h.feed.health().AAPL!.lastError).toMatch(/^HTTP 502/);
    expect(h.feed.health().AAPL!.retryAt).toBeGreaterThan(h.clock.now() - 10_000);
    await h.runTo(open + 20 * MIN + 5000, 2000);
    expect(h.fake.counters.failed5xx).toBe(3);
    const health = h.feed.health().AAPL!;
    expect(health).toMatchObject({ state: 'polling', circuit: 'closed', consecutiveFailures: 0, errors: 3 });
    expect(h.got.get('AAPL')).toEqual(completedAt(candles, lastOkAt(h.fake)));
    expect(h.got.get('AAPL')!.length).toBe(20);
  });

  it('opens the circuit after consecutive failures and probes once per half-open period', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    const candles = series(open, 40);
    const h = await harness(
      open + 2 * MIN,
      ['AAPL'],
      { AAPL: candles },
      { since: open, entry: { breaker: { failures: 3, halfOpenAfterMs: 5 * MIN } } },
      (fake) => fake.controls.fail5xx(4),
    );
    await h.runTo(open + 3 * MIN, 1000);
    expect(h.feed.health().AAPL).toMatchObject({ circuit: 'open', consecutiveFailures: 3, state: 'backoff' });
    expect(h.fake.counters.chart).toBe(3);
    const openedAt = h.fake.requests.at(-1)!.at;
    expect(h.feed.health().AAPL!.retryAt).toBe(openedAt + 5 * MIN);
    await h.runTo(openedAt + 5 * MIN - 1000, 5000);
    expect(h.fake.counters.chart).toBe(3); // nothing while open
    await h.runTo(openedAt + 5 * MIN + 1000, 1000);
    expect(h.fake.counters.chart).toBe(4); // one half-open trial: it fails, the circuit reopens
    expect(h.feed.health().AAPL).toMatchObject({ circuit: 'open', consecutiveFailures: 4 });
    const reopenedAt = h.fake.requests.at(-1)!.at;
    await h.runTo(reopenedAt + 5 * MIN - 1000, 5000);
    expect(h.fake.counters.chart).toBe(4);
    await h.runTo(reopenedAt + 5 * MIN + 1000, 1000);
    expect(h.fake.counters.chart).toBe(5); // the trial succeeds: closed again
    expect(h.feed.health().AAPL).toMatchObject({
      circuit: 'closed',
      state: 'polling',
      consecutiveFailures: 0,
    });
    expect(h.got.get('AAPL')).toEqual(completedAt(candles, reopenedAt + 5 * MIN));
    expect(h.got.get('AAPL')!.length).toBe(12);
  });

  it('honours Retry-After on 429', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    const candles = series(open, 40);
    const start = open + 3 * MIN;
    const h = await harness(start, ['AAPL'], { AAPL: candles }, { since: open }, (fake) =>
      fake.controls.rateLimit(1, 150),
    );
    expect(h.fake.counters).toMatchObject({ chart: 1, rateLimited: 1 });
    const health = h.feed.health().AAPL!;
    expect(health).toMatchObject({ state: 'backoff', rateLimited: 1, circuit: 'closed' });
    expect(health.lastError).toMatch(/^HTTP 429/);
    expect(health.retryAt).toBeGreaterThanOrEqual(start + 150_000);
    await h.runTo(start + 149_000, 1000);
    expect(h.fake.counters.chart).toBe(1);
    await h.runTo(open + 10 * MIN + 5000, 1000);
    expect(h.fake.counters.chart).toBeGreaterThan(1);
    expect(h.got.get('AAPL')).toEqual(completedAt(candles, lastOkAt(h.fake)));
    expect(h.got.get('AAPL')!.length).toBe(10);
  });

  it('counts malformed answers (broken JSON, schema-invalid JSON) and keeps going', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    const candles = series(open, 40);
    const h = await harness(open + 2 * MIN, ['AAPL'], { AAPL: candles }, { since: open }, (fake) =>
      fake.controls.malformed(2),
    );
    await h.runTo(open + 10 * MIN + 5000, 1000);
    expect(h.fake.counters.malformed).toBe(2);
    expect(h.feed.health().AAPL).toMatchObject({ malformed: 2, errors: 2, state: 'polling' });
    expect(h.feed.health().AAPL!.lastError).toMatch(/^HTTP 200: /);
    expect(h.got.get('AAPL')).toEqual(completedAt(candles, lastOkAt(h.fake)));
    expect(h.got.get('AAPL')!.length).toBe(10);
  });
  it('redelivers bars a failing sink did not take, without touching the circuit', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    const candles = series(open, 20);
    const clock = new FakeClock(open + 5 * MIN);
    const fake = await startFakeYahoo({ now: () => clock.now() });
    fake.setSeries('AAPL', candles);
    const got: SourceBar[] = [];
    let failures = 1;
    const feed = new YahooFeed(
      { exchange: yahooEntry(), symbols: ['AAPL'], clock, log, yahoo: fake.client(), since: open },
      {
        async onBars(_symbol, bars) {
          if (failures-- > 0) throw new Error('writer unavailable');
          got.push(...bars);
        },
      },
    );
    const ac = new AbortController();
    const done = feed.start(ac.signal);
    try {
      await vi.waitFor(() => expect(feed.health().AAPL!.state).toBe('backoff'), { interval: 2 });
      expect(feed.health().AAPL).toMatchObject({
        circuit: 'closed',
        lastError: 'sink: writer unavailable',
        bars: 0,
      });
      for (let i = 0; i < 20; i++) {
        clock.advance(1000);
        await vi.waitFor(() => expect(clock.pendingTimers()).toBe(1), { interval: 2 });
      }
      expect(got).toEqual(completedAt(candles, fake.requests.at(-1)!.at));
      expect(got.length).toBe(5); // 13:30 … 13:33 redelivered, then 13:34 at 13:35:02
    } finally {
      ac.abort();
      await done;
      await fake.close();
    }
  });

  it('backfills at most a week, handing it on in protocol-sized chunks, and reports the rest as lost', async () => {
    const now = utc('2025-03-15T12:00:00Z'); // a Saturday: crypto trades, NYSE does not
    const DAY = 86_400_000;
    const week = series(now - 10 * DAY, 10 * 1440); // ten days of history
    // Resuming after ten days away: the first three are beyond what Yahoo serves.
    const h = await harness(now, ['BTC-USD'], { 'BTC-USD': week }, { since: now - 10 * DAY });
    const got = h.got.get('BTC-USD')!;
    const first = Number(h.fake.requests[0]!.query.period1) * 1000;
    expect(first).toBe(now - 7 * DAY);
    expect(got).toEqual(completedAt(week, now).filter((b) => b.t >= first));
    expect(got.length).toBe(7 * 1440 - 1); // the 11:59 minute is still settling at 12:00:00
    // The lost window once, after the bars that follow it (so they exist when it is applied).
    expect(h.calls.get('BTC-USD')).toEqual([5000, 5000, 79, 'gap']);
    expect(h.gaps.get('BTC-USD')).toEqual([{ from: now - 10 * DAY, to: first }]);
    expect(h.feed.health()['BTC-USD']).toMatchObject({ bars: got.length, gaps: 1, state: 'polling' });
    await h.runTo(now + 3 * MIN);
    expect(h.gaps.get('BTC-USD')).toHaveLength(1);
  });

  it('retries a lost window the sink did not take, without widening it over the bars since', async () => {
    const DAY = 86_400_000;
    const now = utc('2025-03-15T12:00:00Z');
    const history = series(now - 9 * DAY, 9 * 1440 + 10);
    const h = await harness(
      now,
      ['BTC-USD'],
      { 'BTC-USD': history },
      { since: now - 9 * DAY },
      undefined,
      {},
      1,
    );
    expect(h.feed.health()['BTC-USD']).toMatchObject({
      state: 'backoff',
      gaps: 0,
      lastError: 'sink: gap not stored',
    });
    await h.runTo(now + 2 * MIN + 5000);
    expect(h.gaps.get('BTC-USD')).toEqual([{ from: now - 9 * DAY, to: now - 7 * DAY }]);
    expect(h.got.get('BTC-USD')).toEqual(
      completedAt(history, now + 2 * MIN + 5000).filter((b) => b.t >= now - 7 * DAY),
    );
    expect(h.feed.health()['BTC-USD']).toMatchObject({ gaps: 1, state: 'polling' });
  });

  it('reports no lost window for a symbol seen for the first time', async () => {
    const now = utc('2025-03-15T12:00:00Z');
    const h = await harness(now, ['BTC-USD'], { 'BTC-USD': series(now - 2 * 86_400_000, 2 * 1440) });
    await h.runTo(now + MIN + 5000);
    expect(h.got.get('BTC-USD')!.length).toBeGreaterThan(1000);
    expect(h.gaps.get('BTC-USD')).toBeUndefined();
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-03-11T13:30:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Tue, 11 Mar 2025 13:31:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
});

describe('the fake Yahoo behind real yahoo-finance2', () => {
  let fake: FakeYahoo;
  afterEach(async () => fake?.close());

  for (const consent of [false, true]) {
    it(`serves quote() through the cookie and crumb dance${consent ? ' with the EU consent pages' : ''}`, async () => {
      fake = await startFakeYahoo({ start: utc('2025-03-11T14:00:00Z'), consent });
      fake.setSeries('AAPL', series(utc('2025-03-11T13:30:00Z'), 60));
      const yf = fake.client();
      const q = await yf.quote('AAPL');
      expect(q).toMatchObject({
        symbol: 'AAPL',
        quoteType: 'EQUITY',
        marketState: 'REGULAR',
        currency: 'USD',
      });
      expect(q.regularMarketTime).toEqual(new Date('2025-03-11T13:59:00Z'));
      await yf.quote(['AAPL', 'THYAO.IS']);
      expect(fake.counters).toMatchObject({ crumb: 1, cookie: 1, consent: consent ? 1 : 0, quote: 2 });
      const hosts = fake.requests.map((r) => r.host);
      expect(hosts).toContain('query1.finance.yahoo.com'); // /v1/test/getcrumb
      if (consent) expect(hosts).toEqual(expect.arrayContaining(['guce.yahoo.com', 'consent.yahoo.com']));
    });
  }

  it('answers chart() like Yahoo: forming last row, meta, a 404 for unknown symbols', async () => {
    const open = utc('2025-03-11T13:30:00Z');
    fake = await startFakeYahoo({ start: open + 5 * MIN + 20_000 });
    fake.setSeries('AAPL', series(open, 60));
    const yf = fake.client();
    const r = await yf.chart('AAPL', {
      interval: '1m',
      period1: new Date(open),
      period2: new Date(open + 3_600_000),
    });
    expect(r.meta).toMatchObject({
      currency: 'USD',
      exchangeTimezoneName: 'America/New_York',
      timezone: 'EDT',
    });
    expect(r.meta.currentTradingPeriod.regular.start).toEqual(new Date(open));
    expect(r.quotes.length).toBe(6);
    expect(r.quotes.at(-1)!.date).toEqual(new Date(open + 5 * MIN + 20_000)); // not minute-aligned
    await expect(yf.chart('NOPE', { interval: '1m', period1: new Date(open) })).rejects.toThrow(
      /No data found/,
    );
    await expect(fake.fetch('https://example.com/')).rejects.toThrow(/refusing/);
  });
});
