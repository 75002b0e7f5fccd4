/**
 * The Yahoo exchange on a real nats-server and PostgreSQL, with the real yahoo-finance2 against
 * the local Yahoo fake (test/fakes/fake-yahoo.ts): 1m chart bars of AAPL (NYSE) and THYAO.IS
 * (Borsa Istanbul) become stored source bars (candles.source = 'source') equal to the series,
 * rolled up to 5m and 15m; at BIST's close THYAO.IS shows `market-closed` in the actor's health
 * while AAPL keeps polling; a restarted worker resumes after the last published bar.
 *
 * Time: every role runs on a clock shifted to 2025-03-11 14:59:52 UTC (real-time pace), the
 * fake's "now" is the same clock. Both markets are open then; BIST closes at 15:00 UTC
 * (18:00 Istanbul), NYSE stays open (11:00 New York).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExchangeAdapters } from '../actors/factory.ts';
import { type Clock, systemClock, type TimerHandle } from '../core/clock.ts';
import { parseExchangesFile, syncExchanges } from '../core/exchanges-config.ts';
import {
  actorIds,
  decodeJson,
  type SourceBar,
  subjects,
  TIMEFRAME_MS,
  type Timeframe,
} from '../core/protocol/index.ts';
import { type RoleHandle, startWorkerRole } from '../launcher/roles.ts';
import { type FakeCandle, type FakeYahoo, startFakeYahoo } from './fakes/fake-yahoo.ts';
import { eventually, testLog, topology } from './support/infra.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';
import { storedFeed } from './support/trades.ts';

const MIN = 60_000;
const DAY = 86_400_000;
const utc = (iso: string) => Date.parse(iso);
const NYSE_OPEN = utc('2025-03-11T13:30:00Z');
const BIST_OPEN = utc('2025-03-11T07:00:00Z');
const BIST_CLOSE = utc('2025-03-11T15:00:00Z');
const BIST_NEXT_OPEN = utc('2025-03-12T07:00:00Z');
/** What the clock reads when the roles start. */
const ANCHOR = BIST_CLOSE - 8000;

/** Real time, shifted: `anchor(t)` makes now() read t at that moment and run on from there. */
class ShiftedClock implements Clock {
  private offset = 0;
  anchor(at: number): void {
    this.offset = at - Date.now();
  }
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return systemClock.setTimeout(fn, ms);
  }
  clearTimeout(handle: TimerHandle): void {
    systemClock.clearTimeout(handle);
  }
}

/** A deterministic 1m series; `nulls` are minutes Yahoo reports with null prices. */
function series(from: number, minutes: number, base: number, nulls: number[] = []): FakeCandle[] {
  return Array.from({ length: minutes }, (_, i) => {
    const t = from + i * MIN;
    if (nulls.includes(t)) return { t, o: null, h: null, l: null, c: null, vol: null };
    const o = base + ((i * 37) % 11) / 4;
    const c = o + (((i * 13) % 7) - 3) / 8;
    return { t, o, h: Math.max(o, c) + 0.25, l: Math.min(o, c) - 0.25, c, vol: 1000 + ((i * 7919) % 500) };
  });
}

const AAPL = series(NYSE_OPEN, 150, 220, [NYSE_OPEN + 40 * MIN]); // 13:30 … 15:59, 14:10 null
const THYAO = series(BIST_OPEN, 480, 300, [BIST_OPEN + 100 * MIN]); // the whole session, 08:40 null

/** The bars a poll after `at` has seen complete (minute over, plus the feed's 2 s settle). */
const completedBefore = (candles: FakeCandle[], at: number): SourceBar[] =>
  candles
    .filter((k) => k.o !== null && k.t + MIN <= at)
    .map((k) => ({ t: k.t, o: k.o!, h: k.h!, l: k.l!, c: k.c!, vol: k.vol! }));

interface WantBar extends SourceBar {
  gap: number;
}

/** 1m source bars rolled up to a timeframe (every bucket complete), with gap counts. */
function rollUp(bars: SourceBar[], tf: Timeframe): WantBar[] {
  const ms = TIMEFRAME_MS[tf];
  const out: WantBar[] = [];
  for (const b of bars) {
    const t = Math.floor(b.t / ms) * ms;
    const last = out.at(-1);
    if (last?.t === t) {
      last.h = Math.max(last.h, b.h);
      last.l = Math.min(last.l, b.l);
      last.c = b.c;
      last.vol += b.vol;
    } else out.push({ ...b, t, gap: last ? (t - last.t) / ms - 1 : 0 });
  }
  return out;
}

type Topo = Awaited<ReturnType<typeof topology>>;

interface SymbolHealth {
  state: string;
  circuit: string;
  calendar: string;
  closedReason: string | null;
  nextOpen: number | null;
  lastBarT: number | null;
  requests: number;
  errors: number;
}

interface ExchangeHealth {
  status: string;
  sessionId: string;
  detail?: { symbols?: Record<string, SymbolHealth> };
}

async function exchangeHealth(topo: Topo): Promise<ExchangeHealth | null> {
  const e = await topo.kv.health.get(actorIds.exchange('yahoo'));
  if (e?.operation !== 'PUT') return null;
  const parsed = decodeJson(e.value);
  return parsed.ok ? (parsed.value as ExchangeHealth) : null;
}

/** Source bars of one symbol as stored in TRADES, message by message. */
async function publishedBars(topo: Topo, sym: string): Promise<SourceBar[][]> {
  return (await storedFeed(topo, subjects.trade('yahoo', sym))).map((m) => {
    if (m.kind !== 'bars') throw new Error(`not a source-bar batch: ${m.kind}`);
    expect(m.rejected).toEqual([]);
    return m.batch.bars;
  });
}

describe('yahoo exchange', () => {
  const clock = new ShiftedClock();
  let fake: FakeYahoo;
  let sys: TestSystem;
  let worker: RoleHandle | null = null;
  let adapters: ExchangeAdapters;

  const startWorker = async () => {
    worker = await startWorkerRole(sys.cfg, testLog, clock, 'w1', adapters);
  };

  beforeAll(async () => {
    // Yahoo serves BIST 15 minutes late (the feed's unit tests follow that); here both the fake
    // and the exchange's dataDelayMs say real time, so the close is reached in seconds.
    fake = await startFakeYahoo({ now: () => clock.now(), realTime: true });
    fake.setSeries('AAPL', AAPL);
    fake.setSeries('THYAO.IS', THYAO);
    adapters = { yahoo: () => fake.client() };
    sys = await startSystem({
      roles: ['supervisor'],
      clock,
      beforeRoles: async (pool) => {
        await syncExchanges(
          pool,
          parseExchangesFile(
            JSON.stringify({
              exchanges: {
                yahoo: {
                  kind: 'yahoo',
                  symbols: ['AAPL', 'THYAO.IS'],
                  pollIntervalMs: 60_000,
                  dataDelayMs: { BIST: 0 },
                },
              },
            }),
          ),
        );
        clock.anchor(ANCHOR);
      },
    });
    await startWorker();
  });

  afterAll(async () => {
    await worker?.stop();
    await sys?.stop();
    await fake?.close();
  });

  it('stores the 1m series as source bars, rolls them up, and shows THYAO.IS market-closed after 18:00 Istanbul', async () => {
    await using topo = await topology(sys.cfg);
    // Both symbols were first polled while their markets were open (else the set-up was too slow).
    const first = await eventually(async () => {
      const ok = fake.requests.filter((r) => r.status === 200);
      const thyao = ok.find((r) => r.symbol === 'THYAO.IS');
      return thyao && ok.some((r) => r.symbol === 'AAPL') ? thyao : null;
    }, 'first polls');
    expect(first.at).toBeLessThan(BIST_CLOSE);

    // The final poll after BIST's close (15:00:02) completes the session; then it sleeps.
    const health = await eventually(
      async () => {
        const h = await exchangeHealth(topo);
        return h?.detail?.symbols?.['THYAO.IS']?.state === 'market-closed' ? h : null;
      },
      'THYAO.IS market-closed',
      30_000,
    );
    expect(health.status).toBe('running');
    expect(health.detail!.symbols!['THYAO.IS']).toMatchObject({
      calendar: 'BIST',
      delayMs: 0,
      closedReason: 'after-close',
      nextOpen: BIST_NEXT_OPEN,
      circuit: 'closed',
      lastBarT: BIST_CLOSE - MIN,
      errors: 0,
    });
    expect(health.detail!.symbols!.AAPL).toMatchObject({
      calendar: 'NYSE',
      state: 'polling',
      circuit: 'closed',
    });
    const thyaoRequests = fake.counters.chartBySymbol['THYAO.IS'];

    const want: Record<string, SourceBar[]> = {
      AAPL: completedBefore(AAPL, BIST_CLOSE),
      'THYAO.IS': completedBefore(THYAO, BIST_CLOSE),
    };
    expect(want.AAPL).toHaveLength(89); // 13:30 … 14:59 without the null 14:10
    expect(want['THYAO.IS']).toHaveLength(479); // 07:00 … 14:59 without the null 08:40
    for (const [sym, bars] of Object.entries(want)) {
      for (const tf of ['1m', '5m', '15m'] as const) {
        const expected =
          tf === '1m'
            ? bars.map((b, i) => ({ ...b, gap: i === 0 ? 0 : (b.t - bars[i - 1]!.t) / MIN - 1 }))
            : rollUp(bars, tf);
        const rows = await eventually(async () => {
          const r = (await storedBars(sys.db.pool, tf, 'yahoo', sym)).filter((x) => x.t < BIST_CLOSE);
          return r.length >= expected.length ? r : null;
        }, `${sym} ${tf} bars`);
        expect(rows.map((r) => r.t)).toEqual(expected.map((b) => b.t));
        rows.forEach((r, i) => {
          const b = expected[i]!;
          expect([r.open, r.high, r.low, r.close, r.trades, r.gap]).toEqual([b.o, b.h, b.l, b.c, 0, b.gap]);
          expect(r.volume).toBeCloseTo(b.vol, 6);
        });
      }
      expect(want[sym]!.some((b, i) => i > 0 && b.t - want[sym]![i - 1]!.t > MIN)).toBe(true);
    }
    const sources = await sys.db.pool.query(`SELECT DISTINCT source FROM candles WHERE exchange = 'yahoo'`);
    expect(sources.rows).toEqual([{ source: 'source' }]);
    // Market closed: no request since the final poll.
    expect(fake.counters.chartBySymbol['THYAO.IS']).toBe(thyaoRequests);
  });

  it('a restarted worker resumes after the last published bar: nothing fetched or published twice', async () => {
    await using topo = await topology(sys.cfg);
    const before = (await exchangeHealth(topo))!;
    await worker?.stop();
    // Read after the stop: a poll that completes while the worker stops publishes one more bar.
    const lastAapl = (await publishedBars(topo, 'AAPL')).flat().at(-1)!.t;
    const requestsBefore = fake.requests.length;
    const thyaoRequests = fake.counters.chartBySymbol['THYAO.IS'];
    await startWorker();
    const after = await eventually(async () => {
      const h = await exchangeHealth(topo);
      const aapl = h?.detail?.symbols?.AAPL;
      return h && h.sessionId !== before.sessionId && aapl && aapl.requests > 0 ? h : null;
    }, 'the new session polled AAPL');
    expect(after.detail!.symbols!['THYAO.IS']).toMatchObject({ state: 'market-closed', requests: 0 });
    // The first request of the new session starts at the minute after the last published bar.
    const resumed = fake.requests.slice(requestsBefore).find((r) => r.symbol === 'AAPL')!;
    expect(Number(resumed.query.period1) * 1000).toBe(lastAapl + MIN);
    expect(fake.counters.chartBySymbol['THYAO.IS']).toBe(thyaoRequests);

    // TRADES holds every minute once, in order.
    for (const sym of ['AAPL', 'THYAO.IS']) {
      const times = (await publishedBars(topo, sym)).flat().map((b) => b.t);
      expect(times.length).toBeGreaterThan(0);
      times.forEach((t, i) => {
        if (i > 0) expect(t).toBeGreaterThan(times[i - 1]!);
      });
    }
  });

  it('a worker back after ten days marks what Yahoo no longer serves as a gap, once, and resumes after it', async () => {
    await using topo = await topology(sys.cfg);
    const subject = subjects.trade('yahoo', 'AAPL');
    const lastBefore = (await publishedBars(topo, 'AAPL')).flat().at(-1)!.t;
    await worker?.stop();
    // Ten days later, 14:00 UTC on a Friday: NYSE open since 13:30 with new bars.
    const back = NYSE_OPEN + 10 * DAY;
    fake.setSeries('AAPL', [...AAPL, ...series(back, 60, 230)]);
    clock.anchor(back + 30 * MIN);
    await startWorker();
    const feed = await eventually(async () => {
      const msgs = await storedFeed(topo, subject);
      return msgs.some((m) => m.kind === 'gap') ? msgs : null;
    }, 'a gap mark for AAPL');
    const at = feed.findIndex((m) => m.kind === 'gap');
    const mark = feed[at]!;
    if (mark.kind !== 'gap') throw new Error('not a gap mark');
    // From the minute after the last bar to the oldest minute Yahoo still serves (7 days back).
    expect(mark.mark.gap.from).toBe(lastBefore + MIN);
    expect(mark.mark.gap.to).toBeGreaterThanOrEqual(back + 30 * MIN - 7 * DAY);
    expect(mark.mark.gap.to).toBeLessThan(back + 32 * MIN - 7 * DAY);
    // The bars of the new session were published before the mark.
    const newBars = feed.slice(0, at).flatMap((m) => (m.kind === 'bars' ? m.batch.bars : []));
    expect(newBars.some((b) => b.t >= back)).toBe(true);
    const health = await eventually(async () => {
      const h = await exchangeHealth(topo);
      return (h?.detail?.symbols?.AAPL as { gaps?: number } | undefined)?.gaps === 1 ? h : null;
    }, 'the gap in health');
    const lastBar = health.detail!.symbols!.AAPL!.lastBarT!;
    expect(lastBar).toBeGreaterThanOrEqual(back);

    // A restart now resumes after the newest bar, past the mark: no second mark.
    const requestsBefore = fake.requests.length;
    await worker?.stop();
    await startWorker();
    await eventually(
      async () => fake.requests.slice(requestsBefore).find((r) => r.symbol === 'AAPL') ?? null,
      'AAPL polled again',
    );
    const resumed = fake.requests.slice(requestsBefore).find((r) => r.symbol === 'AAPL')!;
    expect(Number(resumed.query.period1) * 1000).toBeGreaterThan(lastBar);
    expect((await storedFeed(topo, subject)).filter((m) => m.kind === 'gap')).toHaveLength(1);
  });
});
