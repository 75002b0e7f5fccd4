/**
 * The ccxt exchange actor on a real nats-server and PostgreSQL (supervisor, worker and gateway
 * in this process), with ccxt's own code talking to local fakes of Binance and Kraken
 * (test/fakes): each scenario scripts a few minutes of trades stamped in the recent past, runs
 * a fault while the exchange keeps trading, and then checks
 * - that the stored 1m bars equal `barsFromTrades` of every trade the exchange made,
 * - that TRADES holds each of those trades exactly once, in order,
 * - that the actor's health record in KV actor-health showed the fault while it lasted,
 * - that the actor never crashed (restarts 0, one session).
 * Faults: a stall with the socket open, a disconnect mid-minute (streams refused for a while),
 * garbage frames, a 429 with Retry-After, a worker restart; and two outages that cannot be
 * repaired (history gone, repair refused) which must leave gap marks: bars marked incomplete.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CcxtExchange } from '../actors/exchange/ccxt/index.ts';
import type { ExchangeAdapters } from '../actors/factory.ts';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import { parseExchangesFile, syncExchanges } from '../core/exchanges-config.ts';
import { metrics } from '../core/metrics.ts';
import { actorIds, bucketStart, decodeJson, STREAMS, subjects, type Trade } from '../core/protocol/index.ts';
import { type RoleHandle, startWorkerRole } from '../launcher/roles.ts';
import { type FakeBinance, startFakeBinance } from './fakes/fake-binance.ts';
import { closedPort, type ScriptedTrade, scriptTrades } from './fakes/fake-common.ts';
import { type FakeKraken, startFakeKraken } from './fakes/fake-kraken.ts';
import { sameBar } from './support/bars.ts';
import { eventually, testLog, topology } from './support/infra.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';
import { storedTrades } from './support/trades.ts';

const MIN = 60_000;
const STEP_MS = 250;
type Fake = FakeBinance | FakeKraken;
type Topo = Awaited<ReturnType<typeof topology>>;

interface Venue {
  ccxtId: 'binance' | 'kraken';
  /** Prefix of the tickmesh exchange ids of its scenarios. */
  prefix: string;
  symbol: string;
  start(script: ScriptedTrade[]): Promise<Fake>;
}

const VENUES: Venue[] = [
  {
    ccxtId: 'binance',
    prefix: 'bn',
    symbol: 'BTC/USDT',
    start: (script) => startFakeBinance({ trades: { 'BTC/USDT': script } }),
  },
  {
    ccxtId: 'kraken',
    prefix: 'kr',
    symbol: 'BTC/USD',
    start: (script) => startFakeKraken({ trades: { 'BTC/USD': script } }),
  },
];

interface FeedSymbolHealth {
  state: string;
  lastTradeTs: number | null;
  stale: boolean;
  lastTradeAgeMs: number | null;
  expectedIntervalMs: number | null;
  tradesReceived: number;
}

interface CcxtHealth {
  status: string;
  sessionId: string;
  restarts: number;
  detail?: {
    adapter: string;
    connected: boolean;
    circuit: string;
    reconnects: number;
    backfilled: number;
    frameErrors: number;
    malformedFrames: number;
    malformed: number;
    restWeightUsed: number;
    retryAfterUntil: number | null;
    lastError: { message: string; at: number } | null;
    connection?: { state: string; since: number; lastError: { message: string; at: number } | null };
    resumed: number;
    gaps: number;
    published: { trades: number; backfilled: number; gapMarks: number };
    recentGaps: { symbol: string; from: number; to: number; reason: string }[];
    symbols: Record<string, FeedSymbolHealth>;
  };
}

async function healthOf(topo: Topo, ex: string): Promise<CcxtHealth | null> {
  const e = await topo.kv.health.get(actorIds.exchange(ex));
  if (e?.operation !== 'PUT') return null;
  const parsed = decodeJson(e.value);
  return parsed.ok ? (parsed.value as CcxtHealth) : null;
}

const pick = (t: Trade) => ({ id: t.id, ts: t.ts, px: t.px, qty: t.qty });

/** A prom-client metric's value for exactly these labels (0 when absent). */
async function metricValue(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return hit?.value ?? 0;
}

describe('ccxt exchange actor', () => {
  let sys: TestSystem;
  let worker: RoleHandle | null = null;
  const fakes = new Map<string, Fake>();
  /**
   * The newest ccxt instance of each exchange (what the actor handed to ccxt), for the one test
   * that looks inside it. The hook only records: every exchange reaches its fake through the
   * exchanges file (`ccxt.urls`, `ccxt.options`, `ccxt.rateLimitMs`), as a user's would.
   */
  const instances = new Map<string, CcxtExchange>();
  const adapters: ExchangeAdapters = {
    ccxt: { configure: (exchange, ex) => void instances.set(ex, exchange) },
  };

  const startWorker = async () => {
    worker = await startWorkerRole(sys.cfg, testLog, undefined, 'w1', adapters);
  };

  beforeAll(async () => {
    sys = await startSystem({ roles: ['supervisor', 'gateway'] });
    await startWorker();
  });

  afterAll(async () => {
    await worker?.stop();
    await sys?.stop();
    for (const f of fakes.values()) await f.close();
  });

  /**
   * One scenario's exchange: a fake with a script of 3.5 minutes (a trade every 250 ms) that
   * starts 5–6 minutes ago, plus a closer a minute after it whose time closes every bar before
   * its own; the ccxt exchange `ex` on it; and the checks at the end.
   */
  async function scenario(
    venue: Venue,
    name: string,
    opts: { ccxt?: Record<string, unknown>; firstId?: number; sameMs?: [number, number] } = {},
  ) {
    const ex = `${venue.prefix}${name}`;
    const sym = venue.symbol;
    const t0 = bucketStart(Date.now() - 5 * MIN, '1m');
    const script = scriptTrades({ count: 840, start: t0, stepMs: STEP_MS, firstId: opts.firstId ?? 1000 });
    if (opts.sameMs) {
      // A burst: the trades with these ids (inclusive) happen in one millisecond.
      const [lo, hi] = opts.sameMs;
      const burst = script.filter((t) => Number(t.id) >= lo && Number(t.id) <= hi);
      for (const t of burst) t.ts = burst[0]!.ts;
    }
    const last = script.at(-1)!;
    const closer: ScriptedTrade = { ...last, id: String(Number(last.id) + 1), ts: t0 + 4.5 * MIN };
    script.push(closer);
    const fake = await venue.start(script);
    fakes.set(ex, fake);
    const topo = await topology(sys.cfg);
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: {
            [ex]: {
              kind: 'ccxt',
              symbols: [sym],
              // Kraken's ccxt throttle is 1 request/s; the fakes have no limit.
              ccxt: { id: venue.ccxtId, ...fake.fileSettings(), rateLimitMs: 5, ...opts.ccxt },
              staleness: { factor: 10, minMs: 1000, maxMs: 3000 },
              backoff: { initialMs: 100, maxMs: 1000 },
              breaker: { failures: 5, halfOpenAfterMs: 2000 },
            },
          },
        }),
      ),
    );
    const subscribed = () =>
      eventually(async () => fake.subscriptions().some((s) => s.length > 0), `${ex} subscribed`);
    await subscribed();
    const first = await eventually(async () => {
      const h = await healthOf(topo, ex);
      return h?.status === 'running' ? h : null;
    }, `${ex} running`);

    /** Emits `n` trades, or up to exchange time `ts` (not the closer). */
    const emit = (n: number) => fake.emit(sym, Math.min(n, fake.remaining(sym) - 1));
    const emitUntil = (ts: number) =>
      emit(script.filter((t) => t.ts <= ts).length - fake.allTrades(sym).length);
    const health = async () => (await healthOf(topo, ex))!;
    /** Emits up to exchange time `ts` and waits until the feed has handed every trade on. */
    const liveUntil = async (ts: number) => {
      emitUntil(ts);
      const n = fake.allTrades(sym).length;
      await eventually(
        async () => ((await healthOf(topo, ex))?.detail?.symbols[sym]?.tradesReceived ?? 0) >= n,
        `${ex} ${n} trades handed on`,
      );
    };

    return {
      ex,
      sym,
      t0,
      fake,
      topo,
      first,
      emit,
      emitUntil,
      health,
      liveUntil,
      subscribed,
      /** Waits until the health record satisfies `pred` (polled while the fault lasts). */
      healthShows: (what: string, pred: (h: CcxtHealth) => boolean, onPoll?: () => void) =>
        eventually(async () => {
          onPoll?.();
          const h = await healthOf(topo, ex);
          return h && pred(h) ? h : null;
        }, `${ex} health shows ${what}`),
      /**
       * Emits the rest and the closer; checks bars, TRADES and the actor's record. `lost`: ids
       * the exchange no longer has (an unrepairable gap): left out of the expectation.
       */
      async finish(opts: { lost?: Set<string>; sessions?: number } = {}) {
        emit(Number.POSITIVE_INFINITY);
        fake.emit(sym, 1); // the closer
        const lost = opts.lost ?? new Set<string>();
        const trades = fake.allTrades(sym).filter((t) => !lost.has(t.id));
        const end = bucketStart(closer.ts, '1m');
        const want = barsFromTrades(ex, sym, '1m', trades).filter((b) => b.t < end);
        const same = (rows: Awaited<ReturnType<typeof storedBars>>) =>
          rows.length === want.length && rows.every((r, i) => sameBar(r, want[i]!, 1e-6));
        const rows = await eventually(
          async () => {
            const r = (await storedBars(sys.db.pool, '1m', ex, sym)).filter((b) => b.t < end);
            return same(r) ? r : null;
          },
          `${ex} 1m bars equal to barsFromTrades`,
          30_000,
        ).catch(async (e) => {
          const r = (await storedBars(sys.db.pool, '1m', ex, sym)).filter((b) => b.t < end);
          expect(r.map((x) => [x.t, x.open, x.close, x.trades, x.gap])).toEqual(
            want.map((b) => [b.t, b.o, b.c, b.n, b.gap]),
          );
          throw e;
        });
        expect(rows).toHaveLength(4); // t0 … t0+3m; the closer's own bar stays forming
        // Every trade once, in exchange order.
        const stored = await eventually(async () => {
          const s = await storedTrades(topo, subjects.trade(ex, sym), 'skip');
          return s.length >= trades.length ? s : null;
        }, `${ex} trades stored`);
        expect(stored.map(pick)).toEqual(trades.map(pick));
        // The record as of the end (the detail is refreshed twice a second).
        const h = await eventually(async () => {
          const r = await healthOf(topo, ex);
          return r?.detail?.symbols[sym]?.lastTradeTs === closer.ts ? r : null;
        }, `${ex} health after the closer`);
        expect(h.status).toBe('running');
        expect(h.restarts).toBe(0);
        if ((opts.sessions ?? 1) === 1) expect(h.sessionId).toBe(first.sessionId);
        return h;
      },
      async close() {
        await syncExchanges(
          sys.db.pool,
          parseExchangesFile(
            JSON.stringify({
              exchanges: { [ex]: { kind: 'ccxt', enabled: false, ccxt: { id: venue.ccxtId } } },
            }),
          ),
        );
        await eventually(async () => (await healthOf(topo, ex)) === null, `${ex} stopped`);
        await topo[Symbol.asyncDispose]();
      },
    };
  }

  describe.each(VENUES)('on a fake $ccxtId', (venue) => {
    it('a stall with the socket open: stale in health while it lasts, repaired over REST', async () => {
      const s = await scenario(venue, 'stall');
      await s.liveUntil(s.t0 + 70_000);
      s.fake.silence(true);
      // The exchange keeps trading (visible over REST only) while the socket says nothing.
      const during = await s.healthShows(
        'the symbol stale',
        (h) => h.detail?.symbols[s.sym]?.stale === true,
        () => s.emit(1),
      );
      expect(during.detail!.symbols[s.sym]!.lastTradeAgeMs).toBeGreaterThanOrEqual(1000);
      expect(during.detail!.symbols[s.sym]!.expectedIntervalMs).toBeCloseTo(STEP_MS, -1);
      s.fake.silence(false);
      s.emit(8);
      await s.healthShows('the stream live again', (h) => h.detail?.symbols[s.sym]?.stale === false);
      const h = await s.finish();
      expect(h.detail!.backfilled).toBeGreaterThan(0);
      expect(h.detail!.published.backfilled).toBe(h.detail!.backfilled);
      await s.close();
    });

    it('a disconnect mid-minute, streams refused for a while: shown disconnected, gap repaired', async () => {
      const s = await scenario(venue, 'drop');
      await s.liveUntil(s.t0 + 90_500); // mid-minute
      s.fake.refuseConnections(true);
      s.fake.dropConnections();
      s.emit(40); // nobody listens: REST only
      const during = await s.healthShows(
        'the outage',
        (h) => h.detail?.connected === false && h.detail.reconnects > 0,
      );
      expect(during.detail!.symbols[s.sym]!.state).toBe('backoff');
      expect(during.detail!.lastError?.message).toMatch(/NetworkError|ExchangeNotAvailable/);
      s.emit(40);
      s.fake.refuseConnections(false);
      await s.subscribed();
      s.emit(20);
      const h = await s.finish();
      expect(h.detail!.connected).toBe(true);
      // Kraken replays its last 50 trades on subscribe: those come live.
      expect(h.detail!.backfilled).toBeGreaterThanOrEqual(venue.ccxtId === 'kraken' ? 30 : 80);
      // The same story in the metrics (the worker runs in this process, sampled every 2 s).
      const labels = { exchange: s.ex, symbol: s.sym };
      const m = await eventually(async () => {
        const v = {
          received: await metricValue(metrics.feedTradesReceived, labels),
          backfilled: await metricValue(metrics.feedBackfilled, labels),
          reconnects: await metricValue(metrics.feedReconnects, { exchange: s.ex }),
          circuit: await metricValue(metrics.feedCircuitState, labels),
        };
        return v.received === s.fake.allTrades(s.sym).length ? v : null;
      }, `${s.ex} metrics`);
      expect(m.backfilled).toBe(h.detail!.backfilled);
      expect(m.reconnects).toBeGreaterThanOrEqual(1);
      expect(m.circuit).toBe(0);
      await s.close();
    });

    it('garbage frames: counted in health, never a crash, exactly the good trades', async () => {
      const s = await scenario(venue, 'junk');
      await s.liveUntil(s.t0 + 30_000);
      for (const kind of ['invalid-json', 'wrong-shape', 'missing-fields', 'nan-price'] as const) {
        // Each frame alone, while the feed waits on its socket (as on a real exchange).
        s.fake.sendMalformed(kind, s.sym);
        await s.liveUntil(s.fake.allTrades(s.sym).at(-1)!.ts + 15_000);
      }
      const during = await s.healthShows(
        'the unreadable frames',
        (h) => (h.detail?.malformedFrames ?? 0) >= 1 && (h.detail?.frameErrors ?? 0) >= 1,
      );
      expect(during.detail!.lastError?.message).toMatch(/websocket frame/);
      await s.finish();
      await s.close();
    });

    it('a 429 with Retry-After during a repair: shown until it passes, then repaired', async () => {
      const s = await scenario(venue, 'limit');
      await s.liveUntil(s.t0 + 80_000);
      s.fake.rateLimit(1, 3);
      s.fake.dropConnections();
      // REST only (more than Kraken replays on subscribe): the reconnect's repair meets the 429.
      s.emit(80);
      const during = await s.healthShows('Retry-After', (h) => (h.detail?.retryAfterUntil ?? null) !== null);
      expect(during.detail!.lastError?.message).toMatch(/DDoSProtection|RateLimitExceeded/);
      expect(during.detail!.symbols[s.sym]!.state).toBe('backoff');
      s.emit(30); // live, held back until the repair is done
      await s.healthShows('Retry-After passed', (h) => h.detail?.retryAfterUntil === null);
      const h = await s.finish();
      expect(h.detail!.backfilled).toBeGreaterThanOrEqual(30); // Kraken: 80 − its 50 replayed
      await s.close();
    });

    it('a worker restart while the exchange keeps trading: resumes from TRADES, nothing twice', async () => {
      // Regression: ids 9990 … 10009 in one millisecond. ccxt sorts a REST page by timestamp and
      // then id as a string ('10000' < '9990'); the feed lost the trades behind the boundary.
      const s = await scenario(venue, 'restart', { firstId: 9500, sameMs: [9990, 10009] });
      await s.liveUntil(s.t0 + 100_000); // up to id 9900
      await worker?.stop();
      s.emit(120); // trades while no worker runs (9901 … 10020): REST brings them back
      await startWorker();
      const resumed = await s.healthShows(
        'a resumed session',
        (h) => h.sessionId !== s.first.sessionId && h.status === 'running',
      );
      expect(resumed.detail!.resumed).toBe(1);
      await s.subscribed();
      s.emit(40);
      const h = await s.finish({ sessions: 2 });
      expect(h.detail!.published.backfilled).toBeGreaterThanOrEqual(
        120 - (venue.ccxtId === 'kraken' ? 50 : 0),
      );
      await s.close();
    });
  });

  it('binance: history no longer reaching the resume point leaves a gap mark: bars incomplete', async () => {
    const venue = VENUES[0]!;
    const s = await scenario(venue, 'gap');
    await s.liveUntil(s.t0 + 100_000);
    await worker?.stop();
    const missed = s.emit(120);
    s.fake.forgetHistory(s.sym, 40); // aggTrades now starts 80 trades after the resume point
    await startWorker();
    const lost = new Set(missed.slice(0, 80).map((t) => t.id));
    const shown = await s.healthShows('the gap mark', (h) => (h.detail?.published.gapMarks ?? 0) >= 1);
    const gap = shown.detail!.recentGaps[0]!;
    const lastKept = s.fake.allTrades(s.sym).find((t) => Number(t.id) === Number(missed[0]!.id) - 1)!;
    expect(gap).toMatchObject({ symbol: s.sym, from: lastKept.ts, to: missed[80]!.ts });
    expect(gap.reason).toMatch(/80 trades before id/);
    // Nothing traded since: the gap mark is the newest message on the subject. A restart must
    // resume from the trade stored before it, and repair what happens meanwhile.
    const newest = await s.topo.jsm.streams.getMessage(STREAMS.trades, {
      last_by_subj: subjects.trade(s.ex, s.sym),
    });
    expect(decodeJson(newest!.data)).toMatchObject({
      ok: true,
      value: { gap: { from: gap.from, to: gap.to } },
    });
    await worker?.stop();
    s.emit(20);
    await startWorker();
    const third = await s.healthShows(
      'a third session that repaired the downtime',
      (h) => h.sessionId !== shown.sessionId && (h.detail?.published.backfilled ?? 0) >= 20,
    );
    expect(third.detail).toMatchObject({ resumed: 1, gaps: 0 });
    await s.subscribed();
    await s.finish({ lost, sessions: 3 });
    // The bars the outage overlaps are marked incomplete, the others are not.
    const { rows } = await sys.db.pool.query<{ t: number; incomplete: boolean }>(
      `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, incomplete FROM candles
        WHERE exchange = $1 AND timeframe = '1m' ORDER BY ts`,
      [s.ex],
    );
    const overlaps = (t: number) => t < gap.to && t + MIN > gap.from;
    expect(rows.filter((r) => r.incomplete).map((r) => r.t)).toEqual(
      rows.filter((r) => overlaps(r.t)).map((r) => r.t),
    );
    expect(rows.some((r) => r.incomplete)).toBe(true);
    await s.close();
  });

  it('credentials come from the environment variables the config names, and stay out of health', async () => {
    process.env.TM_TEST_CCXT_KEY = 'key-from-env';
    process.env.TM_TEST_CCXT_SECRET = 'secret-from-env';
    const s = await scenario(VENUES[0]!, 'creds', {
      ccxt: { credentialsEnv: { apiKey: 'TM_TEST_CCXT_KEY', secret: 'TM_TEST_CCXT_SECRET' } },
    });
    const ccxtInstance = instances.get(s.ex) as unknown as { apiKey: string; secret: string };
    expect([ccxtInstance.apiKey, ccxtInstance.secret]).toEqual(['key-from-env', 'secret-from-env']);
    const record = await s.topo.kv.health.get(actorIds.exchange(s.ex));
    expect(record!.string()).not.toMatch(/from-env/);
    const stored = await sys.db.pool.query(`SELECT options::text AS o FROM exchanges WHERE id = $1`, [s.ex]);
    expect(stored.rows[0].o).not.toMatch(/from-env/);
    await s.close();

    // A variable that is not set fails the actor with a message naming it (not a value).
    fakes.set('bnnocreds', s.fake);
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: {
            bnnocreds: {
              kind: 'ccxt',
              symbols: ['BTC/USDT'],
              ccxt: {
                id: 'binance',
                ...s.fake.fileSettings(),
                credentialsEnv: { apiKey: 'TM_TEST_CCXT_UNSET', secret: 'TM_TEST_CCXT_SECRET' },
              },
            },
          },
        }),
      ),
    );
    await using topo = await topology(sys.cfg);
    const failing = await eventually(async () => {
      const h = await topo.kv.health.get(actorIds.exchange('bnnocreds'));
      return h?.operation === 'PUT' && /TM_TEST_CCXT_UNSET/.test(h.string()) ? h.string() : null;
    }, 'bnnocreds failing');
    expect(failing).toMatch(/credentials variable TM_TEST_CCXT_UNSET \(apiKey\) is not set/);
    expect(failing).not.toMatch(/from-env/);
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: { bnnocreds: { kind: 'ccxt', enabled: false, ccxt: { id: 'binance' } } },
        }),
      ),
    );
  });

  it('kraken: a repair the exchange refuses leaves a gap mark up to the first trade after it', async () => {
    const venue = VENUES[1]!;
    const s = await scenario(venue, 'refused');
    await s.liveUntil(s.t0 + 100_000);
    s.fake.refuseTrades(3); // the feed gives up a repair after three permanent errors
    s.fake.refuseConnections(true);
    s.fake.dropConnections();
    // More than Kraken replays on subscribe (50): the first 30 are gone for good.
    const missed = s.emit(80);
    await s.healthShows('the outage', (h) => h.detail?.connected === false);
    s.fake.refuseConnections(false);
    const shown = await s.healthShows('the gap', (h) => (h.detail?.gaps ?? 0) >= 1);
    const gap = shown.detail!.recentGaps[0]!;
    expect(gap.reason).toMatch(/repair failed: BadRequest/);
    expect(gap.to).toBe(missed[30]!.ts); // the first trade of the subscribe snapshot
    await s.finish({ lost: new Set(missed.slice(0, 30).map((t) => t.id)) });
    const { rows } = await sys.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM candles WHERE exchange = $1 AND timeframe = '1m' AND incomplete`,
      [s.ex],
    );
    expect(rows[0]!.n).toBeGreaterThanOrEqual(1);
    await s.close();
  });
  it('an exchanges file in YAML points binance at plain ws:// and http:// urls: trades stream into TRADES', async () => {
    const t0 = Date.now() - 60_000;
    const script = scriptTrades({ count: 40, start: t0, stepMs: 1000, firstId: 7000 });
    const fake = await startFakeBinance({ trades: { 'BTC/USDT': script } });
    fakes.set('bnyaml', fake);
    const { restUrl, wsUrl } = fake;
    expect([restUrl, wsUrl].map((u) => u.split(':')[0])).toEqual(['http', 'ws']);
    // What a user writes to reach a local gateway: nothing but the file.
    const yaml = [
      'exchanges:',
      '  bnyaml:',
      '    kind: ccxt',
      '    symbols: [BTC/USDT]',
      '    ccxt:',
      '      id: binance',
      '      rateLimitMs: 5',
      '      urls:',
      '        api:',
      `          public: ${restUrl}/api/v3`,
      `          private: ${restUrl}/api/v3`,
      `          v1: ${restUrl}/api/v3`,
      '          ws:',
      `            spot: ${wsUrl}/ws`,
      '      options:',
      '        fetchMarkets: { types: [spot] }',
      '        fetchCurrencies: false',
    ].join('\n');
    await syncExchanges(sys.db.pool, parseExchangesFile(yaml, 'exchanges.yaml'));
    await using topo = await topology(sys.cfg);
    await eventually(async () => fake.subscriptions().some((x) => x.length > 0), 'bnyaml subscribed');
    const live = fake.emit('BTC/USDT', 20);
    const stored = await eventually(async () => {
      const got = await storedTrades(topo, subjects.trade('bnyaml', 'BTC/USDT'), 'skip');
      return got.length >= live.length ? got : null;
    }, 'bnyaml trades in TRADES');
    expect(stored.map(pick)).toEqual(live.map(pick));
    // The record is rewritten twice a second: wait for one written after the trades.
    const h = await eventually(async () => {
      const r = await healthOf(topo, 'bnyaml');
      return (r?.detail?.symbols['BTC/USDT']?.tradesReceived ?? 0) >= live.length ? r : null;
    }, 'bnyaml health after the trades');
    expect(h.status).toBe('running');
    expect(h.detail).toMatchObject({ connected: true, frameErrors: 0, connection: { state: 'connected' } });
    expect(fake.counters.wsConnections).toBe(1);
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile('exchanges: { bnyaml: { kind: ccxt, enabled: false, ccxt: { id: binance } } }'),
    );
    await eventually(async () => (await healthOf(topo, 'bnyaml')) === null, 'bnyaml stopped');
  });

  it('a file pointing at a closed port: the health record says unreachable, with the error and since when', async () => {
    const port = await closedPort();
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: {
            bnclosed: {
              kind: 'ccxt',
              symbols: ['BTC/USDT'],
              ccxt: {
                id: 'binance',
                urls: {
                  api: {
                    public: `http://127.0.0.1:${port}/api/v3`,
                    ws: { spot: `ws://127.0.0.1:${port}/ws` },
                  },
                },
              },
              breaker: { failures: 2, halfOpenAfterMs: 60_000 },
              backoff: { initialMs: 50, maxMs: 100 },
            },
          },
        }),
      ),
    );
    await using topo = await topology(sys.cfg);
    const before = Date.now();
    const h = await eventually(async () => {
      const r = await healthOf(topo, 'bnclosed');
      return r?.detail?.connection?.state === 'unreachable' ? r : null;
    }, 'bnclosed unreachable');
    const connection = h.detail!.connection!;
    expect(connection.lastError?.message).toMatch(
      /loadMarkets: .*(NetworkError|ExchangeNotAvailable|fetch failed|ECONNREFUSED)/,
    );
    expect(connection.since).toBeGreaterThan(before - 60_000);
    expect(connection.since).toBeLessThanOrEqual(Date.now());
    expect(h.detail).toMatchObject({ connected: false, circuit: 'open' });
    await syncExchanges(
      sys.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: { bnclosed: { kind: 'ccxt', enabled: false, ccxt: { id: 'binance' } } },
        }),
      ),
    );
    await eventually(async () => (await healthOf(topo, 'bnclosed')) === null, 'bnclosed stopped');
  });
});
