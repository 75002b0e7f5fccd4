/**
 * The replay exchange on a real nats-server and PostgreSQL: a generated NDJSON recording (two
 * symbols this exchange publishes, one it does not, one invalid row) goes through exchange
 * actor → TRADES → symbol actors → writer, and the stored bars equal the bars computed from the
 * file's trades. Restarting the worker, after the replay and in the middle of a paced one,
 * publishes no trade twice and leaves the stored bars as they were.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRADES_TABLE_DDL } from '../actors/exchange/replay-source.ts';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import { parseExchangesFile, syncExchanges } from '../core/exchanges-config.ts';
import {
  actorIds,
  bucketStart,
  decodeJson,
  STREAMS,
  subjectFilters,
  subjects,
  TIMEFRAMES,
  type Timeframe,
  type Trade,
} from '../core/protocol/index.ts';
import { type RoleHandle, startWorkerRole } from '../launcher/roles.ts';
import { eventually, testLog, topology } from './support/infra.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';
import { storedTrades, syntheticTrades } from './support/trades.ts';

const START = Date.UTC(2024, 3, 2, 9, 0, 0);
const SYMBOLS = ['BTC/USDT', 'ETH/USDT'] as const;
const OTHER = 'DOGE/USDT';
const TFS: Timeframe[] = ['1m', '5m', '15m'];
/** A last trade per symbol, hours later: it closes every bar before it (it stays forming itself). */
const CLOSER_TS = START + 3 * 3600_000;

const RECORDED = fileURLToPath(
  new URL('../../shared/data/binance-XRP_ETH-trades-2019-10.json.gz', import.meta.url),
);

type Topo = Awaited<ReturnType<typeof topology>>;

/** Each symbol's trades in the file, closer included, and the NDJSON text. */
function recording(): { bySymbol: Record<string, Trade[]>; ndjson: string } {
  const bySymbol: Record<string, Trade[]> = {
    'BTC/USDT': syntheticTrades({ start: START, count: 1500, seed: 11 }),
    'ETH/USDT': syntheticTrades({ start: START, count: 1500, seed: 23, firstId: 500_000 }),
    [OTHER]: syntheticTrades({ start: START, count: 300, seed: 5, firstId: 900_000 }),
  };
  for (const sym of SYMBOLS) {
    const last = bySymbol[sym]!.at(-1)!;
    bySymbol[sym]!.push({ id: `${sym}-closer`, ts: CLOSER_TS, px: last.px, qty: 0 });
  }
  const rows = Object.entries(bySymbol)
    .flatMap(([symbol, trades]) => trades.map((t) => ({ symbol, ...t })))
    .sort((a, b) => a.ts - b.ts);
  const lines = rows.map((r) => JSON.stringify(r));
  // An invalid row in the middle: skipped and counted, nothing else changes.
  lines.splice(1000, 0, JSON.stringify({ symbol: 'BTC/USDT', id: 'bad', ts: rows[999]!.ts, px: -1, qty: 1 }));
  return { bySymbol, ndjson: `${lines.join('\n')}\n` };
}

interface Health {
  status: string;
  sessionId: string;
  restarts: number;
  error?: string;
  detail?: Record<string, unknown> & { state?: string; published?: number; skipped?: number };
}

async function healthOf(topo: Topo, id: string): Promise<Health | null> {
  const e = await topo.kv.health.get(id);
  if (e?.operation !== 'PUT') return null;
  const parsed = decodeJson(e.value);
  return parsed.ok ? (parsed.value as Health) : null;
}

/** Messages per subject in TRADES under a filter. */
async function messageCounts(topo: Topo, filter: string): Promise<Record<string, number>> {
  const info = await topo.jsm.streams.info(STREAMS.trades, { subjects_filter: filter });
  return info.state.subjects ?? {};
}

/** Stored bars of a series before the closer's bucket, and the bars computed from the file. */
async function compareBars(sys: TestSystem, ex: string, sym: string, trades: Trade[]) {
  for (const tf of TFS) {
    const end = bucketStart(CLOSER_TS, tf);
    const want = barsFromTrades(ex, sym, tf, trades).filter((b) => b.t < end);
    const rows = await eventually(
      async () => {
        const r = (await storedBars(sys.db.pool, tf, ex, sym)).filter((b) => b.t < end);
        return r.length >= want.length ? r : null;
      },
      `${ex} ${sym} ${tf} bars`,
      30_000,
    );
    expect(rows.map((r) => r.t)).toEqual(want.map((b) => b.t));
    rows.forEach((r, i) => {
      const b = want[i]!;
      expect([r.open, r.high, r.low, r.close, r.trades, r.gap]).toEqual([b.o, b.h, b.l, b.c, b.n, b.gap]);
      expect(r.volume).toBeCloseTo(b.vol, 6);
    });
    if (tf === '1m') expect(want.some((b) => b.gap > 0)).toBe(true);
  }
}

async function candleRows(sys: TestSystem, ex: string) {
  const { rows } = await sys.db.pool.query(
    `SELECT symbol, timeframe, ts, open, high, low, close, volume, trades, gap, revision, updated_at
       FROM candles WHERE exchange = $1 AND ts < to_timestamp($2 / 1000.0) ORDER BY 1, 2, 3`,
    [ex, bucketStart(CLOSER_TS, '1d')],
  );
  return rows;
}

describe('replay exchange', () => {
  let sys: TestSystem;
  let worker: RoleHandle | null = null;
  let dir: string;
  let file: string;
  let data: ReturnType<typeof recording>;

  const syncReplay = (id: string, entry: Record<string, unknown>, pool = sys.db.pool) =>
    syncExchanges(pool, parseExchangesFile(JSON.stringify({ exchanges: { [id]: entry } })));

  const restartWorker = async () => {
    await worker?.stop();
    worker = await startWorkerRole(sys.cfg, testLog, undefined, 'w1');
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tickmesh-replay-int-'));
    data = recording();
    file = join(dir, 'trades.ndjson');
    writeFileSync(file, data.ndjson);
    sys = await startSystem({
      roles: ['supervisor'],
      beforeRoles: async (pool) => {
        await syncReplay(
          'replay',
          { kind: 'replay', symbols: [...SYMBOLS], source: { type: 'file', path: file }, speed: 'max' },
          pool,
        );
      },
    });
    worker = await startWorkerRole(sys.cfg, testLog, undefined, 'w1');
  });

  afterAll(async () => {
    await worker?.stop();
    await sys?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publishes the recording at full speed; stored 1m/5m/15m bars equal the bars of its trades', async () => {
    await using topo = await topology(sys.cfg);
    const finished = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.replay');
      return h?.detail?.state === 'finished' ? h : null;
    }, 'replay finished');
    expect(finished.status).toBe('running');
    expect(finished.detail).toMatchObject({
      published: 3002,
      skipped: 0,
      otherSymbols: 300,
      invalid: 1,
      speed: 'max',
    });
    for (const sym of SYMBOLS) {
      const stored = await storedTrades(topo, subjects.trade('replay', sym));
      expect(stored).toEqual(data.bySymbol[sym]);
      await compareBars(sys, 'replay', sym, data.bySymbol[sym]!);
    }
    // Symbols the exchange does not have are not published.
    expect(Object.keys(await messageCounts(topo, subjectFilters.tradesOf('replay'))).sort()).toEqual([
      subjects.trade('replay', 'BTC/USDT'),
      subjects.trade('replay', 'ETH/USDT'),
    ]);
  });

  it('a restarted worker publishes nothing again and changes no stored bar', async () => {
    await using topo = await topology(sys.cfg);
    const before = await messageCounts(topo, subjectFilters.tradesOf('replay'));
    const lastSeq = (await topo.jsm.streams.info(STREAMS.trades)).state.last_seq;
    const rows = await candleRows(sys, 'replay');
    const session = (await healthOf(topo, 'exchange.replay'))!.sessionId;

    await restartWorker();
    const again = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.replay');
      return h && h.sessionId !== session && h.detail?.state === 'finished' ? h : null;
    }, 'replay finished again in a new session');
    expect(again.detail).toMatchObject({ published: 0, skipped: 3002 });
    // The symbol actors came back too; let them settle before comparing.
    for (const sym of SYMBOLS)
      await eventually(
        async () => (await healthOf(topo, actorIds.symbol('replay', sym)))?.status === 'running',
        `symbol actor ${sym} running`,
      );
    expect(await messageCounts(topo, subjectFilters.tradesOf('replay'))).toEqual(before);
    expect((await topo.jsm.streams.info(STREAMS.trades)).state.last_seq).toBe(lastSeq);
    expect(await candleRows(sys, 'replay')).toEqual(rows);
  });

  it('a paced replay interrupted by a worker restart continues where it stopped', async () => {
    await using topo = await topology(sys.cfg);
    // Three hours of trades (closers included) at 3,000× ≈ 3.6 s.
    await syncReplay('paced', {
      kind: 'replay',
      symbols: [...SYMBOLS],
      source: { type: 'file', path: file, format: 'ndjson' },
      speed: 3000,
    });
    const first = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.paced');
      return h && (h.detail?.published ?? 0) >= 600 ? h : null;
    }, 'paced replay under way');
    expect(first.detail?.state).toBe('replaying');
    await restartWorker();
    const second = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.paced');
      return h && h.sessionId !== first.sessionId && h.detail?.state === 'finished' ? h : null;
    }, 'paced replay finished after the restart');
    const { published = 0, skipped = 0 } = second.detail ?? {};
    // The second session really continued a replay under way.
    expect(skipped).toBeGreaterThan(0);
    expect(published).toBeGreaterThan(0);
    expect(published + skipped).toBe(3002);
    for (const sym of SYMBOLS) {
      const stored = await storedTrades(topo, subjects.trade('paced', sym));
      expect(stored).toEqual(data.bySymbol[sym]);
      await compareBars(sys, 'paced', sym, data.bySymbol[sym]!);
    }
  });

  it('a database source without a trades table fails with a clear error', async () => {
    await using topo = await topology(sys.cfg);
    // The migrations create the table; an operator may have dropped it.
    await sys.db.pool.query('DROP TABLE trades');
    await syncReplay('nodb', {
      kind: 'replay',
      symbols: ['BTC/USDT'],
      source: { type: 'database', exchange: 'archive' },
    });
    const failed = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.nodb');
      return h?.error ? h : null;
    }, 'nodb failing');
    expect(failed.error).toMatch(/replay exchange nodb .* archive, but the database has no trades table/);
    await syncReplay('nodb', { kind: 'replay', enabled: false, source: { type: 'database', exchange: 'x' } });
  });

  it('replays the trades of another exchange from the trades table, in (ts, id) order', async () => {
    await using topo = await topology(sys.cfg);
    await sys.db.pool.query(TRADES_TABLE_DDL);
    const byId = (a: Trade, b: Trade) => a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const want: Record<string, Trade[]> = {};
    for (const sym of SYMBOLS) {
      want[sym] = [...data.bySymbol[sym]!].sort(byId);
      const t = want[sym]!;
      await sys.db.pool.query(
        `INSERT INTO trades (exchange, symbol, id, ts, px, qty, side)
         SELECT 'archive', $1, id, to_timestamp(ts / 1000.0), px, qty, side
           FROM unnest($2::text[], $3::float8[], $4::float8[], $5::float8[], $6::text[]) AS u(id, ts, px, qty, side)`,
        [
          sym,
          t.map((x) => x.id),
          t.map((x) => x.ts),
          t.map((x) => x.px),
          t.map((x) => x.qty),
          t.map((x) => x.side ?? null),
        ],
      );
    }
    await syncReplay('fromdb', {
      kind: 'replay',
      symbols: [...SYMBOLS],
      source: { type: 'database', exchange: 'archive', from: new Date(START).toISOString() },
    });
    const done = await eventually(async () => {
      const h = await healthOf(topo, 'exchange.fromdb');
      return h?.detail?.state === 'finished' ? h : null;
    }, 'database replay finished');
    expect(done.detail).toMatchObject({ published: 3002, skipped: 0, invalid: 0 });
    for (const sym of SYMBOLS) {
      expect(await storedTrades(topo, subjects.trade('fromdb', sym))).toEqual(want[sym]);
      await compareBars(sys, 'fromdb', sym, want[sym]!);
    }
  });

  describe.runIf(existsSync(RECORDED))('recorded Binance XRP/ETH trades (../shared/data)', () => {
    it('replays the recording; stored bars of every timeframe equal the bars of its trades', async () => {
      await using topo = await topology(sys.cfg);
      // The recording's rows carry no symbol: they belong to the exchange's only symbol.
      await syncReplay('recorded', {
        kind: 'replay',
        symbols: ['XRP/ETH'],
        source: { type: 'file', path: RECORDED },
        speed: 'max',
      });
      await eventually(
        async () => (await healthOf(topo, 'exchange.recorded'))?.detail?.state === 'finished',
        'recorded replay finished',
      );
      const rows = JSON.parse(gunzipSync(readFileSync(RECORDED)).toString()) as [
        number,
        string,
        unknown,
        string,
        number,
        number,
      ][];
      const trades = rows.map(([ts, id, , , px, qty]) => ({ id: String(id), ts, px, qty }));
      expect(trades).toHaveLength(12_477);
      const stored = await storedTrades(topo, subjects.trade('recorded', 'XRP/ETH'));
      expect(stored.map(({ id, ts, px, qty }) => ({ id, ts, px, qty }))).toEqual(trades);
      for (const tf of TIMEFRAMES) {
        const want = barsFromTrades('recorded', 'XRP/ETH', tf, trades);
        // Nothing follows the last trade: its bar of each timeframe is still forming.
        const bars = await eventually(async () => {
          const r = await storedBars(sys.db.pool, tf, 'recorded', 'XRP/ETH');
          return r.length >= want.length - 1 ? r : null;
        }, `recorded ${tf} bars`);
        expect(bars.length).toBeLessThanOrEqual(want.length);
        bars.forEach((r, i) => {
          const b = want[i]!;
          expect([r.t, r.open, r.high, r.low, r.close, r.trades, r.gap]).toEqual([
            b.t,
            b.o,
            b.h,
            b.l,
            b.c,
            b.n,
            b.gap,
          ]);
          expect(r.volume).toBeCloseTo(b.vol, 6);
        });
      }
    });
  });
});
