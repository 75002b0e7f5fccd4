/**
 * CcxtFeed against local fakes that speak Binance's and Kraken's real protocols: ccxt's own code
 * runs unchanged, only its urls point at 127.0.0.1 (plain http:// and ws://), set the way the
 * exchanges file sets them (`ccxt.urls`, `ccxt.options`, validated by the file's schema). Timing decisions (staleness, backoff,
 * Retry-After, circuit, refresh, polling) run on a FakeClock; socket I/O is awaited through
 * conditions (vi.waitFor), never fixed sleeps, except `settle()` before asserting that something
 * did NOT happen.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../../core/clock.ts';
import { type CcxtExchangeOptions, parseStoredOptions } from '../../../core/exchanges-config.ts';
import type { Trade } from '../../../core/protocol/index.ts';
import { startFakeBinance } from '../../../test/fakes/fake-binance.ts';
import {
  closedPort,
  type FakeFileSettings,
  type ScriptedTrade,
  scriptTrades,
} from '../../../test/fakes/fake-common.ts';
import { startFakeKraken } from '../../../test/fakes/fake-kraken.ts';
import { startFakeProxy } from '../../../test/fakes/fake-proxy.ts';
import { makeFakeCa } from '../../../test/fakes/fake-tls.ts';
import { CcxtFeed } from './feed.ts';
import type { TradeSink, TradeSource } from './types.ts';

type Fake = Awaited<ReturnType<typeof startFakeBinance>> | Awaited<ReturnType<typeof startFakeKraken>>;

interface Venue {
  exchangeId: string;
  /** A busy and a quiet symbol. */
  busy: string;
  quiet: string;
  start(opts: { trades: Record<string, ScriptedTrade[]>; happened: Record<string, number> }): Promise<Fake>;
  /** The first REST call of loadMarkets. */
  marketsEndpoint: string;
  tradesEndpoint: string;
}

const VENUES: Venue[] = [
  {
    exchangeId: 'binance',
    busy: 'BTC/USDT',
    quiet: 'XRP/USDT',
    start: (o) => startFakeBinance(o),
    marketsEndpoint: 'exchangeInfo',
    tradesEndpoint: 'aggTrades',
  },
  {
    exchangeId: 'kraken',
    busy: 'BTC/USD',
    quiet: 'SOL/USD',
    start: (o) => startFakeKraken(o),
    marketsEndpoint: 'Assets',
    tradesEndpoint: 'Trades',
  },
];

type FileEntry = { ccxt?: Record<string, unknown> } & Record<string, unknown>;

/** A ccxt exchange entry as the worker gets it: file settings parsed by the file's schema. */
function fileOptions(
  ccxtId: string,
  fake: FakeFileSettings | null,
  entry: FileEntry = {},
): CcxtExchangeOptions {
  const parsed = parseStoredOptions('ccxt', {
    ...entry,
    ccxt: {
      id: ccxtId,
      ...(fake ? { urls: fake.urls, options: fake.options } : {}),
      rateLimitMs: 5, // the fake has no rate limit; ccxt's throttle stays on
      ...entry.ccxt,
    },
  });
  if (parsed.kind !== 'ccxt') throw new Error('not a ccxt entry');
  return parsed;
}

const T0 = 1_700_000_000_000;
const CLOCK0 = 5_000_000;

class RecordingSink implements TradeSink {
  readonly got = new Map<string, { trade: Trade; source: TradeSource }[]>();

  async onTrades(symbol: string, trades: Trade[], source: TradeSource): Promise<void> {
    const list = this.got.get(symbol) ?? [];
    for (const trade of trades) list.push({ trade, source });
    this.got.set(symbol, list);
  }

  trades(symbol: string): Trade[] {
    return (this.got.get(symbol) ?? []).map((e) => e.trade);
  }

  count(symbol: string, source?: TradeSource): number {
    return (this.got.get(symbol) ?? []).filter((e) => source === undefined || e.source === source).length;
  }
}

const pick = (t: Trade) => ({ id: t.id, ts: t.ts, px: t.px, qty: t.qty, side: t.side });

/** Condition waits for socket I/O (real time, polled; fails the test when it never holds). */
const until = (cond: () => boolean, timeout = 4000) => {
  const notMet = new Error(`condition not met within ${timeout} ms: ${cond.toString()}`); // stack: the caller
  return vi.waitFor(
    () => {
      if (!cond()) throw notMet;
    },
    { timeout, interval: 5 },
  );
};

/** Gives stray I/O time to show up, before asserting that nothing happened. */
const settle = () => new Promise((r) => setTimeout(r, 150));

interface Harness {
  fake: Fake;
  clock: FakeClock;
  sink: RecordingSink;
  feed: CcxtFeed;
  /** Id after which the sink must hold exactly the fake's trades. */
  resumeId: Record<string, number>;
}

const running: { stop: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) await h.stop();
});

async function harness(
  venue: Venue,
  opts: {
    scripts: Record<string, ScriptedTrade[]>;
    happened: Record<string, number>;
    /** Index in the script of each symbol's resume trade (default: 4). */
    resumeAt?: number;
    /** Exchanges-file settings over the harness's (the file's names: `ccxt`, `breaker`, ...). */
    entry?: FileEntry;
    beforeStart?: (fake: Fake) => void;
  },
): Promise<Harness> {
  const fake = await venue.start({ trades: opts.scripts, happened: opts.happened });
  opts.beforeStart?.(fake);
  const clock = new FakeClock(CLOCK0);
  const sink = new RecordingSink();
  const resume: Record<string, { id: string; ts: number }> = {};
  const resumeId: Record<string, number> = {};
  for (const [symbol, script] of Object.entries(opts.scripts)) {
    const t = script[opts.resumeAt ?? 4]!;
    resume[symbol] = { id: t.id, ts: t.ts };
    resumeId[symbol] = Number(t.id);
  }
  const feed = new CcxtFeed(
    {
      exchange: fileOptions(venue.exchangeId, fake.fileSettings(), {
        repair: { pageLimit: 20 },
        backoff: { initialMs: 50, maxMs: 200 },
        ...opts.entry,
      }),
      symbols: Object.keys(opts.scripts),
      clock,
      resume,
    },
    sink,
  );
  const ac = new AbortController();
  const run = feed.start(ac.signal);
  running.push({
    stop: async () => {
      ac.abort();
      await run;
      await fake.close();
    },
  });
  return { fake, clock, sink, feed, resumeId };
}

function expectExactly(h: Harness, symbol: string): void {
  const want = h.fake.allTrades(symbol).filter((t) => Number(t.id) > h.resumeId[symbol]!);
  expect(h.sink.trades(symbol).map(pick)).toEqual(want.map(pick));
}

const waitAll = (h: Harness, symbol: string) =>
  until(
    () =>
      h.sink.count(symbol) >=
      h.fake.allTrades(symbol).filter((t) => Number(t.id) > h.resumeId[symbol]!).length,
  );

/** Waits until the fake has a socket subscribed to `n` trade streams. */
const subscribed = (fake: Fake, n = 1) => until(() => fake.subscriptions().some((s) => s.length >= n));

/** The busy symbol alone, 5 of its trades already happened (resume at the 5th). */
const busyFeed = (venue: Venue, opts: Omit<Parameters<typeof harness>[1], 'scripts' | 'happened'> = {}) =>
  harness(venue, { scripts: { [venue.busy]: busyScript() }, happened: { [venue.busy]: 5 }, ...opts });

/** Once subscribed, `n` trades happen and the sink gets them all. */
async function streamLive(h: Harness, symbol: string, n: number): Promise<void> {
  await subscribed(h.fake);
  h.fake.emit(symbol, n);
  await waitAll(h, symbol);
}

const busyScript = (count = 120) => scriptTrades({ count, start: T0, stepMs: 100, firstId: 1000 });
const quietScript = (count = 20) =>
  scriptTrades({ count, start: T0 + 7, stepMs: 5000, firstId: 50_000, px: 0.5 });

describe.each(VENUES)('CcxtFeed on a fake $exchangeId', (venue) => {
  it('streams: the sink gets the scripted sequence (backfill from the resume point, then live)', async () => {
    const h = await harness(venue, {
      scripts: { [venue.busy]: busyScript(), [venue.quiet]: quietScript() },
      happened: { [venue.busy]: 80, [venue.quiet]: 8 },
    });
    await until(() => h.sink.count(venue.busy) === 75 && h.sink.count(venue.quiet) === 3);
    await subscribed(h.fake, 2);
    for (let i = 0; i < 4; i++) {
      h.fake.emit(venue.busy, 10);
      if (i % 2 === 0) h.fake.emit(venue.quiet, 1);
      await waitAll(h, venue.busy);
    }
    await waitAll(h, venue.quiet);
    expectExactly(h, venue.busy);
    expectExactly(h, venue.quiet);
    // The backfill comes over REST (Kraken also replays its last 50 trades on subscribe)...
    expect(h.sink.count(venue.busy, 'repair')).toBeGreaterThanOrEqual(25);
    expect(h.sink.count(venue.busy, 'live')).toBeGreaterThan(0); // ...then the stream itself
    const health = h.feed.health();
    expect(health).toMatchObject({ mode: 'ws', connected: true, circuit: 'closed', reconnects: 0 });
    expect(health.symbols[venue.busy]).toMatchObject({
      state: 'streaming',
      stale: false,
      tradesReceived: 115,
    });
    expect(h.fake.counters.wsConnections).toBe(1);
    // Binance reports its used weight (X-MBX-USED-WEIGHT-1M); elsewhere it is the request count.
    expect(health.restWeightUsed).toBe(
      venue.exchangeId === 'binance' ? 20 + 4 * health.restCalls - 4 : health.restCalls,
    );
  });

  it('reconnects after dropped connections and repairs the gap: every trade once, in order', async () => {
    const h = await busyFeed(venue);
    await streamLive(h, venue.busy, 10);
    h.fake.dropConnections();
    // Nobody listens: only REST can bring these (more than the 50 Kraken replays on subscribe).
    h.fake.emit(venue.busy, 60);
    await until(() => h.fake.counters.wsConnections === 2);
    await streamLive(h, venue.busy, 10);
    h.fake.dropConnections();
    await until(() => h.fake.counters.wsConnections === 3);
    await streamLive(h, venue.busy, 5);
    expectExactly(h, venue.busy);
    const health = h.feed.health();
    expect(health.reconnects).toBe(2);
    expect(health.backfilled).toBeGreaterThanOrEqual(10);
    expect(health.lastError?.message).toMatch(/NetworkError.*1006/);
  });

  it('closes the gap between a reconnect repair and a subscription that starts late', async () => {
    const h = await busyFeed(venue);
    await streamLive(h, venue.busy, 10);
    h.fake.holdSubscriptions(true);
    h.fake.dropConnections();
    await until(() => h.fake.counters.wsConnections === 2);
    // The reconnect repair runs while the subscription is still pending and finds nothing...
    await until(() => h.feed.health().symbols[venue.busy]!.state === 'streaming');
    // ...then trades happen before the exchange starts streaming: no frame will ever carry them.
    h.fake.emit(venue.busy, 5);
    h.fake.holdSubscriptions(false);
    await streamLive(h, venue.busy, 5);
    expectExactly(h, venue.busy);
  });

  it('detects a silent socket as stale, repairs over REST, reconnects: exact sequence', async () => {
    const h = await busyFeed(venue);
    await streamLive(h, venue.busy, 20);
    h.fake.silence(true);
    h.fake.emit(venue.busy, 10); // visible over REST only
    h.clock.advance(4000);
    expect(h.feed.health().symbols[venue.busy]!.stale).toBe(false);
    h.clock.advance(1000); // 5 s without a trade: k × 100 ms is below the 5 s floor
    const during = h.feed.health();
    expect(during.staleEvents).toBe(1);
    expect(during.symbols[venue.busy]!.stale).toBe(true);
    expect(['stale', 'repairing']).toContain(during.symbols[venue.busy]!.state);
    // The REST probe finds the missed trades, hands them on, and the feed reconnects.
    await until(() => h.fake.counters.wsConnections === 2);
    await waitAll(h, venue.busy);
    h.fake.silence(false);
    await streamLive(h, venue.busy, 10);
    expectExactly(h, venue.busy);
    expect(h.feed.health().backfilled).toBeGreaterThanOrEqual(10);
    expect(h.feed.health().symbols[venue.busy]!.stale).toBe(false);
  });

  it('survives malformed frames: counted, never crashes, exactly the good trades', async () => {
    const h = await busyFeed(venue);
    await streamLive(h, venue.busy, 5);
    for (const kind of ['invalid-json', 'wrong-shape', 'missing-fields', 'nan-price'] as const) {
      h.fake.sendMalformed(kind, venue.busy);
      h.fake.emit(venue.busy, 3);
      await waitAll(h, venue.busy);
    }
    h.fake.emit(venue.busy, 5);
    await waitAll(h, venue.busy);
    expectExactly(h, venue.busy);
    const health = h.feed.health();
    expect(health.malformed).toBeGreaterThanOrEqual(1); // trades without id / price dropped
    expect(health.frameErrors).toBeGreaterThanOrEqual(1); // NaN price: ccxt rejects the watch
    expect(health.malformedFrames).toBe(1); // invalid JSON: ccxt only logs it
    expect(health.connected).toBe(true);
    expect(h.fake.counters.wsConnections).toBe(1);
  });

  it('honours Retry-After of a 429: no request before it passes, then recovers', async () => {
    const h = await busyFeed(venue, {
      beforeStart: (fake) => fake.rateLimit(1, 30),
    });
    await until(() => h.feed.health().retryAfterUntil !== null);
    expect(h.feed.health().retryAfterUntil).toBe(CLOCK0 + 30_000);
    expect(h.feed.health().lastError?.message).toMatch(/DDoSProtection|RateLimit/);
    h.clock.advance(29_999);
    await settle();
    expect(h.fake.counters.restCalls()).toBe(1);
    expect(h.fake.counters.wsConnections).toBe(0);
    h.clock.advance(1);
    await subscribed(h.fake);
    expect(h.fake.counters.restCalls(venue.marketsEndpoint)).toBe(2);
    h.fake.emit(venue.busy, 10);
    await waitAll(h, venue.busy);
    expectExactly(h, venue.busy);
    expect(h.feed.health().retryAfterUntil).toBeNull();
  });

  it('honours Retry-After of a 418 ban during a repair, then completes the repair', async () => {
    const h = await busyFeed(venue);
    await streamLive(h, venue.busy, 10);
    const restBefore = h.fake.counters.restCalls(venue.tradesEndpoint);
    h.fake.ban418(1, 20);
    h.fake.dropConnections();
    h.fake.emit(venue.busy, 10);
    await until(() => h.feed.health().retryAfterUntil !== null);
    const until418 = h.feed.health().retryAfterUntil!;
    expect(until418).toBe(h.clock.now() + 20_000);
    expect(h.feed.health().symbols[venue.busy]!.state).toBe('backoff');
    h.clock.advance(19_000);
    await settle();
    expect(h.fake.counters.restCalls(venue.tradesEndpoint)).toBe(restBefore + 1);
    h.clock.advance(1000);
    await waitAll(h, venue.busy);
    expectExactly(h, venue.busy);
  });

  it('opens its circuit after a 5xx streak, probes half-open, closes on success', async () => {
    const h = await busyFeed(venue, {
      entry: { breaker: { failures: 3, halfOpenAfterMs: 10_000 } },
      beforeStart: (fake) => fake.fail5xx(4),
    });
    const calls = () => h.fake.counters.restCalls();
    for (let n = 1; n <= 3; n++) {
      // The call reached the fake and the feed, having seen it fail, sleeps on the clock.
      await until(() => calls() === n && h.clock.pendingTimers() > 0);
      h.clock.advance(200); // past the backoff (max 200 ms)
    }
    await until(() => h.feed.health().circuit === 'open');
    expect(h.feed.health().lastError?.message).toMatch(/ExchangeNotAvailable/);
    h.clock.advance(9_000);
    await settle();
    expect(calls()).toBe(3); // open: nothing goes out
    h.clock.advance(1_000);
    expect(h.feed.health().circuit).toBe('half-open');
    await until(() => calls() === 4); // the probe fails (4th 503): open again
    await until(() => h.feed.health().circuit === 'open');
    h.clock.advance(10_000);
    expect(h.feed.health().circuit).toBe('half-open');
    await until(() => h.feed.health().circuit === 'closed');
    expect(h.feed.health().circuitTransitions.map((t) => t.to)).toEqual([
      'open',
      'half-open',
      'open',
      'half-open',
      'closed',
    ]);
    await streamLive(h, venue.busy, 10);
    expectExactly(h, venue.busy);
  });

  it('flags a busy symbol stale at 10 s but not a quiet one, and does not keep reconnecting', async () => {
    const h = await harness(venue, {
      scripts: { [venue.busy]: busyScript(), [venue.quiet]: quietScript() },
      happened: { [venue.busy]: 30, [venue.quiet]: 10 },
      resumeAt: 0,
    });
    await until(() => h.sink.count(venue.busy) === 29 && h.sink.count(venue.quiet) === 9);
    await subscribed(h.fake, 2);
    h.fake.emit(venue.busy, 10);
    h.fake.emit(venue.quiet, 1);
    await waitAll(h, venue.busy);
    await waitAll(h, venue.quiet);
    const before = h.feed.health();
    expect(before.symbols[venue.busy]!.expectedIntervalMs).toBeCloseTo(100, 0);
    expect(before.symbols[venue.quiet]!.expectedIntervalMs).toBeCloseTo(5000, 0);
    h.clock.advance(10_000);
    const after = h.feed.health();
    expect(after.symbols[venue.busy]!.stale).toBe(true);
    expect(after.symbols[venue.quiet]!.stale).toBe(false);
    expect(after.symbols[venue.quiet]!.staleAfterMs).toBe(50_000);
    // REST shows nothing missed: a quiet market, not a dead feed. No reconnect; checks back off.
    await until(() => h.feed.health().symbols[venue.busy]!.state !== 'repairing');
    const settled = h.feed.health();
    expect(settled.reconnects).toBe(0);
    expect(settled.symbols[venue.busy]).toMatchObject({ stale: false, staleAfterMs: 10_000 });
    // It keeps looking, each time later: 10 s after that verdict, then 20 s after the next.
    const probes = () => h.fake.counters.restCalls(venue.tradesEndpoint);
    const probesBefore = probes();
    h.clock.advance(9_000);
    expect(h.feed.health().staleEvents).toBe(1);
    h.clock.advance(1_000);
    expect(h.feed.health().staleEvents).toBe(2);
    await until(() => probes() > probesBefore && h.feed.health().symbols[venue.busy]!.state !== 'repairing');
    expect(h.feed.health().symbols[venue.busy]!.staleAfterMs).toBe(20_000);
    h.clock.advance(19_000);
    expect(h.feed.health().staleEvents).toBe(2);
    await settle();
    expect(h.feed.health().reconnects).toBe(0);
    expect(h.fake.counters.wsConnections).toBe(1);
  });

  it('polls with fetchTrades when told to (mode poll): the exact sequence, no websocket', async () => {
    const h = await harness(venue, {
      scripts: { [venue.busy]: busyScript(), [venue.quiet]: quietScript() },
      happened: { [venue.busy]: 30, [venue.quiet]: 6 },
      entry: { ccxt: { mode: 'poll', pollIntervalMs: 1000 } },
    });
    await until(() => h.sink.count(venue.busy) === 25 && h.sink.count(venue.quiet) === 1);
    for (let i = 0; i < 3; i++) {
      h.fake.emit(venue.busy, 25); // more than a page: polling pages too
      h.fake.emit(venue.quiet, 1);
      h.clock.advance(1000);
      await waitAll(h, venue.busy);
      await waitAll(h, venue.quiet);
    }
    expectExactly(h, venue.busy);
    expectExactly(h, venue.quiet);
    expect(h.sink.count(venue.busy, 'repair')).toBe(0);
    expect(h.feed.health()).toMatchObject({ mode: 'poll', reconnects: 0 });
    expect(h.feed.health().symbols[venue.busy]!.state).toBe('polling');
    expect(h.fake.counters.wsConnections).toBe(0);
  });

  it('refreshes its connection before the exchange limit, without a gap', async () => {
    const h = await busyFeed(venue, {
      entry: { refreshAfterMs: 60_000, staleness: { minMs: 120_000, maxMs: 120_000 } },
    });
    await streamLive(h, venue.busy, 10);
    h.clock.advance(59_000);
    await settle();
    expect(h.fake.counters.wsConnections).toBe(1);
    h.fake.emit(venue.busy, 5);
    h.clock.advance(1_000);
    await until(() => h.fake.counters.wsConnections === 2);
    await streamLive(h, venue.busy, 10);
    expectExactly(h, venue.busy);
    expect(h.feed.health()).toMatchObject({ refreshes: 1, reconnects: 1 });
  });
});

describe('CcxtFeed contract', () => {
  it('rejects start() with the sink error when the sink fails (not an exchange error)', async () => {
    const fake = await startFakeBinance({ trades: { 'BTC/USDT': busyScript() }, happened: 10 });
    try {
      const boom = new Error('sink is broken');
      const feed = new CcxtFeed(
        {
          exchange: fileOptions('binance', fake.fileSettings()),
          symbols: ['BTC/USDT'],
          clock: new FakeClock(CLOCK0),
          resume: { 'BTC/USDT': { id: '1002', ts: T0 + 200 } },
        },
        { onTrades: () => Promise.reject(boom) },
      );
      await expect(feed.start(new AbortController().signal)).rejects.toBe(boom);
      await until(() => fake.openSockets() === 0); // the feed closed its socket on the way out
    } finally {
      await fake.close();
    }
  });

  it.each([
    { over: 'REST', proxy: (url: string) => ({ http: url }) },
    { over: 'the websocket', proxy: (url: string) => ({ ws: url }) },
  ])('sends $over through the proxy the file names, the rest directly', async ({ over, proxy: settings }) => {
    const fake = await startFakeBinance({ trades: { 'BTC/USDT': busyScript() }, happened: 10 });
    const proxy = await startFakeProxy();
    const sink = new RecordingSink();
    const ac = new AbortController();
    try {
      const feed = new CcxtFeed(
        {
          exchange: fileOptions('binance', fake.fileSettings(), { ccxt: { proxy: settings(proxy.url) } }),
          symbols: ['BTC/USDT'],
          clock: new FakeClock(CLOCK0),
          resume: { 'BTC/USDT': { id: '1004', ts: T0 + 400 } },
        },
        sink,
      );
      const run = feed.start(ac.signal);
      await until(() => sink.count('BTC/USDT') === 5); // the repair, over REST
      await until(() => fake.subscriptions().some((x) => x.length > 0));
      fake.emit('BTC/USDT', 3);
      await until(() => sink.count('BTC/USDT') === 8);
      const origin = new URL(fake.restUrl).host;
      expect(new Set(proxy.targets)).toEqual(new Set([origin]));
      // REST makes several calls, the websocket one dial.
      if (over === 'REST') expect(proxy.targets.length).toBeGreaterThan(0);
      else expect(proxy.targets).toHaveLength(fake.counters.wsConnections);
      expect(fake.counters.wsConnections).toBe(1);
      ac.abort();
      await run;
    } finally {
      ac.abort();
      await proxy.close();
      await fake.close();
    }
  });

  it('trusts the extra CA the file names, for https:// and wss://; without it nothing connects', async () => {
    const ca = makeFakeCa();
    const fake = await startFakeBinance({
      trades: { 'BTC/USDT': busyScript() },
      happened: 10,
      tls: ca.server,
    });
    const feeds: { ac: AbortController; run: Promise<void> }[] = [];
    const startFeed = (entry: FileEntry, sink: TradeSink) => {
      const feed = new CcxtFeed(
        {
          exchange: fileOptions('binance', fake.fileSettings(), entry),
          symbols: ['BTC/USDT'],
          clock: new FakeClock(CLOCK0),
          resume: { 'BTC/USDT': { id: '1004', ts: T0 + 400 } },
        },
        sink,
      );
      const ac = new AbortController();
      feeds.push({ ac, run: feed.start(ac.signal) });
      return feed;
    };
    try {
      expect(fake.restUrl).toMatch(/^https:/);
      expect(fake.wsUrl).toMatch(/^wss:/);
      const untrusted = startFeed({}, new RecordingSink());
      await until(() => untrusted.health().errors > 0);
      expect(untrusted.health().lastError?.message).toMatch(
        /certificate|self.signed|unable to (get|verify)/i,
      );
      const sink = new RecordingSink();
      startFeed({ ccxt: { caFile: ca.caFile } }, sink);
      await until(() => sink.count('BTC/USDT') === 5); // the repair, over https
      await until(() => fake.subscriptions().some((x) => x.length > 0));
      fake.emit('BTC/USDT', 3);
      await until(() => sink.count('BTC/USDT', 'live') >= 3); // the stream, over wss
      expect(sink.count('BTC/USDT')).toBe(8);
    } finally {
      for (const f of feeds) f.ac.abort();
      await Promise.allSettled(feeds.map((f) => f.run));
      await fake.close();
      ca.dispose();
    }
  });

  it('says plainly when it cannot reach the exchange at all: connection unreachable, the error, since when', async () => {
    const port = await closedPort();
    const clock = new FakeClock(CLOCK0);
    const closed = { urls: { api: { public: `http://127.0.0.1:${port}/api/v3` } }, options: {} };
    const feed = new CcxtFeed(
      {
        exchange: fileOptions('binance', closed, {
          breaker: { failures: 2, halfOpenAfterMs: 10_000 },
          backoff: { initialMs: 50, maxMs: 100 },
        }),
        symbols: ['BTC/USDT'],
        clock,
      },
      new RecordingSink(),
    );
    const ac = new AbortController();
    const run = feed.start(ac.signal);
    try {
      expect(feed.health().connection).toMatchObject({ state: 'connecting', since: CLOCK0, lastError: null });
      await until(() => feed.health().errors === 1 && clock.pendingTimers() > 0); // backing off
      clock.advance(100);
      await until(() => feed.health().connection.state === 'unreachable');
      const { connection } = feed.health();
      expect(connection.since).toBe(CLOCK0 + 100);
      expect(connection.lastError?.message).toMatch(/^loadMarkets: .*(NetworkError|ExchangeNotAvailable)/);
      expect(feed.health()).toMatchObject({ connected: false, circuit: 'open', mode: 'starting' });
    } finally {
      ac.abort();
      await run;
    }
  });

  it('validates its configuration once, with named problems', () => {
    const sink: TradeSink = { onTrades: async () => {} };
    expect(
      () => new CcxtFeed({ exchange: fileOptions('nosuchexchange', null), symbols: ['A/B'] }, sink),
    ).toThrow(/unknown ccxt exchange/);
    expect(() => new CcxtFeed({ exchange: fileOptions('binance', null), symbols: [] }, sink)).toThrow(
      /symbols must not be empty/,
    );
    // The options themselves are the file schema's to check, once (the feed takes its output).
    expect(() => fileOptions('binance', null, { staleness: { factor: -1 } })).toThrow(/staleness\.factor/);
    expect(() => fileOptions('binance', null, { staleness: { minMs: 9000, maxMs: 8000 } })).toThrow(
      /minMs must not exceed maxMs/,
    );
  });
});
