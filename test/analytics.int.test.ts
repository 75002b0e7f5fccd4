/**
 * Indicators and features end to end, checked against an independent implementation: a long,
 * realistic trade sequence (about 3,000 1m bars over 52 days, with quiet hours, late trades
 * that revise closed bars, and a worker killed with SIGKILL in the middle) goes through the
 * real pipeline; then, for every timeframe, technicalindicators' batch `.calculate` over the
 * stored closed bars must give the values stored in `indicators` (1e-9 relative), every bar
 * must have its `ml_features` row, and KV `features-latest` must hold the newest row per series.
 */
import { isDeepStrictEqual } from 'node:util';
import { ADX, ATR, BollingerBands, EMA, MACD, RSI, SMA, Stochastic } from 'technicalindicators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import { FEATURE_VERSION, type FeatureRow, type IndicatorValues } from '../analytics/index.ts';
import type { Config } from '../core/config.ts';
import {
  bucketStart,
  decodeJson,
  stateKeys,
  TIMEFRAMES,
  type Timeframe,
  type Trade,
} from '../core/protocol/index.ts';
import { eventually, topology } from './support/infra.ts';
import { spawnRole } from './support/processes.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'ETH/USDT';
const START = Date.UTC(2024, 2, 1, 0, 0, 0);
const DAYS = 52;

/**
 * A market with activity bursts, quiet stretches of minutes and of hours, slowly changing
 * drift, and, now and then, a trade that arrives after later minutes of the same 5-minute
 * bucket (it revises a closed 1m bar, or lands within the grace). Steps stay well inside the
 * quality checks' jump limit, and no 14-bar window is flat (technicalindicators' flat-data
 * conventions differ from ours; see analytics/indicators.ts).
 */
function marketTrades(seed: number): Trade[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out: Trade[] = [];
  const end = START + DAYS * 86_400_000;
  let ts = START;
  let px = 250;
  let drift = 0;
  let late = 0;
  for (let id = 1; ts < end; id++) {
    const r = rand();
    ts +=
      r < 0.8
        ? 1000 + Math.floor(rand() * 20_000)
        : r < 0.96
          ? 60_000 + Math.floor(rand() * 900_000)
          : 3_600_000 + Math.floor(rand() * 4 * 3_600_000);
    if (rand() < 0.01) drift = (rand() - 0.5) * 0.004;
    px *= 1 + drift + (rand() - 0.5) * 0.006;
    out.push({
      id: String(id),
      ts,
      px: Number(px.toFixed(4)),
      qty: Number((0.05 + rand() * 3).toFixed(6)),
      side: rand() < 0.5 ? 'buy' : 'sell',
    });
    const back = out[out.length - 4];
    if (
      rand() < 0.05 &&
      back &&
      bucketStart(back.ts, '5m') === bucketStart(ts, '5m') &&
      bucketStart(back.ts, '1m') < bucketStart(ts, '1m')
    ) {
      out.push({ id: `late${++late}`, ts: back.ts, px: Number((back.px * 1.0007).toFixed(4)), qty: 0.5 });
    }
  }
  return out;
}

/** Equal to 1e-9 relative (absolute below 1: oscillators and MACD near its crossings). */
const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
const alignEnd = <T>(xs: T[], n: number): (T | null)[] => [
  ...new Array<null>(n - xs.length).fill(null),
  ...xs,
];
const num = (x: number | undefined | null) => (x === undefined || x === null || Number.isNaN(x) ? null : x);

interface StoredBar {
  t: number;
  o: number;
  h: number;
  l: number;
  c: number;
  vol: number;
  n: number;
  gap: number;
  rev: number;
}

type Checked = Exclude<keyof IndicatorValues, 't' | 'vwap' | 'sma100' | 'sma200' | 'ema50' | 'bbWidth'>;

/** What technicalindicators 3.1.0 computes over these bars, per bar index, in our field names. */
function reference(bars: readonly StoredBar[]): Record<Checked, (number | null)[]> {
  const n = bars.length;
  const close = bars.map((b) => b.c);
  const high = bars.map((b) => b.h);
  const low = bars.map((b) => b.l);
  const volume = bars.map((b) => b.vol);
  const macd = alignEnd(
    MACD.calculate({
      values: close,
      fastPeriod: 12,
      slowPeriod: 26,
      signalPeriod: 9,
      SimpleMAOscillator: false,
      SimpleMASignal: false,
    }),
    n,
  );
  const bb = alignEnd(BollingerBands.calculate({ period: 20, stdDev: 2, values: close }), n);
  // The library's stochastic is the fast one; ours is the slow one: our K is its D, our D the
  // 3-bar SMA of that.
  const fastD = alignEnd(Stochastic.calculate({ high, low, close, period: 14, signalPeriod: 3 }), n).map(
    (x) => num(x?.d),
  );
  const slowD = alignEnd(SMA.calculate({ period: 3, values: fastD.filter((x) => x !== null) }), n);
  const adx = alignEnd(ADX.calculate({ high, low, close, period: 14 }), n);
  return {
    rsi: alignEnd(RSI.calculate({ period: 14, values: close }), n),
    macd: macd.map((m) => num(m?.MACD)),
    macdSignal: macd.map((m) => num(m?.signal)),
    macdHist: macd.map((m) => num(m?.histogram)),
    bbUpper: bb.map((x) => num(x?.upper)),
    bbMiddle: bb.map((x) => num(x?.middle)),
    bbLower: bb.map((x) => num(x?.lower)),
    bbPb: bb.map((x) => num(x?.pb)),
    sma20: alignEnd(SMA.calculate({ period: 20, values: close }), n),
    sma50: alignEnd(SMA.calculate({ period: 50, values: close }), n),
    ema12: alignEnd(EMA.calculate({ period: 12, values: close }), n),
    ema26: alignEnd(EMA.calculate({ period: 26, values: close }), n),
    volSma20: alignEnd(SMA.calculate({ period: 20, values: volume }), n),
    atr: alignEnd(ATR.calculate({ high, low, close, period: 14 }), n),
    stochK: fastD,
    stochD: slowD,
    adx: adx.map((x) => num(x?.adx)),
    pdi: adx.map((x) => num(x?.pdi)),
    mdi: adx.map((x) => num(x?.mdi)),
  };
}

/** Differences between the stored indicator values and the reference (empty when equal). */
function indicatorDiffs(
  tf: Timeframe,
  bars: readonly StoredBar[],
  stored: Map<number, IndicatorValues>,
): string[] {
  const ref = reference(bars);
  const diffs: string[] = [];
  bars.forEach((bar, i) => {
    const got = stored.get(bar.t);
    if (!got) {
      diffs.push(`${tf} ${new Date(bar.t).toISOString()}: no indicators row`);
      return;
    }
    for (const field of Object.keys(ref) as Checked[]) {
      const want = ref[field][i]!;
      const have = got[field];
      // +DI/−DI exist from bar 14; the library reports them only along with ADX (bar 27).
      if (want === null && (field === 'pdi' || field === 'mdi')) continue;
      const ok =
        want === null
          ? have === null
          : have !== null &&
            // The library rounds RSI to 2 decimals; we do not.
            (field === 'rsi' ? Math.abs(have - want) <= 0.005 + 1e-9 : near(have, want));
      if (!ok) diffs.push(`${tf} #${i} ${new Date(bar.t).toISOString()} ${field}: ${have} ≠ ${want}`);
    }
  });
  return diffs;
}

describe('indicators and features end to end', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;

  beforeAll(async () => {
    // The supervisor runs here; the worker is a child process, so it can be killed with SIGKILL.
    sys = await startSystem({ exchange: { id: EX, symbols: [SYM] }, roles: ['supervisor'] });
    ({ db, cfg } = sys);
  });

  afterAll(async () => sys?.stop());

  const env = () => ({
    ...sys.nats.env(),
    DATABASE_URL: db.url,
    TICKMESH_WORKER_ID: 'w1',
    SIM_ENABLED: 'false',
    BAR_GRACE_MS: '200',
    HEARTBEAT_MS: '300',
    HEALTH_TTL_MS: '2000',
  });

  async function runningSession(topo: Awaited<ReturnType<typeof topology>>, previous?: string) {
    return eventually(
      async () => {
        const e = await topo.kv.health.get('symbol.test.ETH-USDT');
        const rec = e?.operation === 'PUT' ? decodeJson(e.value) : null;
        const h = rec?.ok ? (rec.value as { status: string; sessionId: string }) : null;
        return h?.status === 'running' && h.sessionId !== previous ? h.sessionId : null;
      },
      'symbol actor running',
      30_000,
    );
  }

  /** Stored closed bars of one timeframe before `before` (ms), ascending. */
  async function storedSeries(tf: Timeframe, before: number | null = null): Promise<StoredBar[]> {
    const { rows } = await db.pool.query<StoredBar>(
      `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, open AS o, high AS h, low AS l, close AS c,
              volume AS vol, trades AS n, gap, revision AS rev
         FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
          AND ($4::float8 IS NULL OR ts < to_timestamp($4 / 1000.0))
        ORDER BY ts`,
      [EX, SYM, tf, before],
    );
    return rows;
  }

  async function byTime<T>(table: 'indicators' | 'ml_features', column: string, tf: Timeframe) {
    const { rows } = await db.pool.query<{ t: number; v: T }>(
      `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, ${column} AS v
         FROM ${table} WHERE exchange = $1 AND symbol = $2 AND timeframe = $3`,
      [EX, SYM, tf],
    );
    return new Map(rows.map((r) => [r.t, r.v]));
  }

  it('stores, through a kill -9 mid-stream, indicators equal to technicalindicators at every timeframe', async () => {
    await using topo = await topology(cfg);
    const trades = marketTrades(20240301);
    const lastGood = trades.reduce((a, b) => (b.ts > a.ts ? b : a));
    // Two days later, at the start of a minute: closes every bar up to 1d. Its own bars stay
    // forming until the actor's quiet-market timer closes them (a minute of wall time later);
    // they are left out of the comparisons.
    const closer: Trade = {
      id: 'closer',
      ts: bucketStart(lastGood.ts + 2 * 86_400_000, '1m'),
      px: lastGood.px,
      qty: 1,
    };
    // After the closer: a late trade into the newest closed bar of every timeframe (revisions
    // of the newest bars, which must reach the features-latest bucket too).
    const lastLate: Trade = {
      id: 'late-last',
      ts: lastGood.ts,
      px: Number((lastGood.px * 1.001).toFixed(4)),
      qty: 2,
    };
    const all = [...trades, lastLate];
    expect(trades.filter((t) => t.id.startsWith('late')).length).toBeGreaterThan(20);

    const half = Math.floor(trades.length * 0.5);
    const first = spawnRole('worker', env());
    const s1 = await runningSession(topo);
    await publishTrades(topo.js, EX, SYM, trades.slice(0, half), 20);
    // Mid-stream: bars are stored and a snapshot exists (the restart resumes from it).
    await eventually(
      async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM indicators`)).rows[0].n > 500 &&
        (await topo.kv.symbolState.get(stateKeys.symbol(EX, SYM)))?.operation === 'PUT',
      'indicators stored and a snapshot taken',
      30_000,
    );
    const more = publishTrades(topo.js, EX, SYM, trades.slice(half, half + 1500), 20);
    expect(await first.kill('SIGKILL')).toBeNull();
    await more;

    const second = spawnRole('worker', env());
    try {
      await runningSession(topo, s1);
      await publishTrades(topo.js, EX, SYM, trades.slice(half + 1500), 20);
      await publishTrades(topo.js, EX, SYM, [closer]);
      await publishTrades(topo.js, EX, SYM, [lastLate]);

      for (const tf of TIMEFRAMES) {
        const want = barsFromTrades(EX, SYM, tf, all);
        const before = bucketStart(closer.ts, tf);
        // Every bar stored, the newest one revised by the last late trade, and its analytics
        // rewritten (indicator values follow the revised bars).
        const diffs = await eventually(
          async () => {
            const bars = await storedSeries(tf, before);
            if (bars.length < want.length || bars.at(-1)!.rev < 1) return null;
            const d = indicatorDiffs(tf, bars, await byTime<IndicatorValues>('indicators', '"values"', tf));
            return d.length === 0 ? ['none'] : null;
          },
          `${tf}: bars, revisions and indicators`,
          30_000,
        ).catch(async (e) => {
          const bars = await storedSeries(tf, before);
          const d = indicatorDiffs(tf, bars, await byTime<IndicatorValues>('indicators', '"values"', tf));
          throw new Error(
            `${e.message}; ${bars.length}/${want.length} bars; ${d.length} differences: ${d.slice(0, 8).join('; ')}` +
              `; worker: ${second.output().slice(-2000)}`,
          );
        });
        expect(diffs).toEqual(['none']);

        // The stored bars are the bars of the trades (OHLC exact, volume summed in another order).
        const bars = await storedSeries(tf, before);
        expect(bars.map((b) => b.t)).toEqual(want.map((b) => b.t));
        bars.forEach((b, i) => {
          const w = want[i]!;
          expect({ o: b.o, h: b.h, l: b.l, c: b.c, n: b.n, gap: b.gap }).toEqual({
            o: w.o,
            h: w.h,
            l: w.l,
            c: w.c,
            n: w.n,
            gap: w.gap,
          });
          expect(near(b.vol, w.vol)).toBe(true);
        });
        // Enough history that every checked indicator is defined on the newest bar.
        const newest = (await byTime<IndicatorValues>('indicators', '"values"', tf)).get(bars.at(-1)!.t)!;
        const undefinedFields = (Object.keys(reference(bars.slice(0, 1))) as Checked[]).filter(
          (k) => newest[k] === null,
        );
        expect(undefinedFields).toEqual([]);

        // One versioned feature row per bar, consistent with the bars and the indicators.
        const features = await byTime<FeatureRow>('ml_features', 'features', tf);
        const versions = await db.pool.query(
          `SELECT DISTINCT feature_version AS v FROM ml_features WHERE timeframe = $1`,
          [tf],
        );
        expect(versions.rows).toEqual([{ v: FEATURE_VERSION }]);
        expect(features.size).toBe(bars.length);
        const sma20 = alignEnd(SMA.calculate({ period: 20, values: bars.map((b) => b.c) }), bars.length);
        bars.forEach((b, i) => {
          const f = features.get(b.t)!;
          expect(f.t).toBe(b.t);
          expect(f.v).toBe(FEATURE_VERSION);
          expect(near(f.hlRange, (b.h - b.l) / b.c)).toBe(true);
          if (i === 0) expect(f.ret1).toBeNull();
          else expect(near(f.ret1!, b.c / bars[i - 1]!.c - 1)).toBe(true);
          if (sma20[i] === null) expect(f.distSma20).toBeNull();
          else expect(near(f.distSma20!, b.c / sma20[i]! - 1)).toBe(true);
        });

        // KV features-latest: the newest stored row of the series (the revised newest bar, or,
        // once the timer closed it, the closer's bar).
        const newestRow = async () => {
          const { rows } = await db.pool.query<{ f: FeatureRow }>(
            `SELECT features AS f FROM ml_features WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
              ORDER BY ts DESC LIMIT 1`,
            [EX, SYM, tf],
          );
          return rows[0]!.f;
        };
        const kvRow = async () => {
          const e = await topo.kv.featuresLatest.get(stateKeys.features(EX, SYM, tf));
          return e?.operation === 'PUT' ? (JSON.parse(e.string()) as FeatureRow & { tf: string }) : null;
        };
        await eventually(async () => {
          const [table, kv] = await Promise.all([newestRow(), kvRow()]);
          return isDeepStrictEqual(kv, { ...table, tf });
        }, `${tf}: features-latest holds the newest (revised) row`).catch(async (e) => {
          throw new Error(
            `${e.message}: KV ${JSON.stringify(await kvRow())} vs table ${JSON.stringify(await newestRow())}`,
          );
        });
        const [table, kv] = await Promise.all([newestRow(), kvRow()]);
        expect(kv).toEqual({ ...table, tf });
      }
      // Revisions happened along the way (late trades), and the kill did not double anything.
      const revised = await db.pool.query(
        `SELECT count(*)::int AS n FROM candles WHERE timeframe = '1m' AND revision > 0`,
      );
      expect(revised.rows[0].n).toBeGreaterThan(5);
    } finally {
      await second.kill('SIGTERM');
    }
    expect(second.output()).not.toMatch(/"level":(50|60)/);
  });
});
