import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../core/clock.ts';
import type { Pool } from '../../core/db.ts';
import type { Trade } from '../../core/protocol/index.ts';
import {
  batchTrades,
  jsonArrayElements,
  type ReplayBatch,
  ReplayFormatError,
  ReplayPacer,
  readCandleFile,
  readTradeFile,
  readTradesFromDb,
  replayFile,
  replayFromDb,
  type SymbolTrade,
} from './replay-source.ts';

const dir = mkdtempSync(join(tmpdir(), 'tickmesh-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fixture(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, name.endsWith('.gz') ? gzipSync(text) : text);
  return path;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const T0 = 1_700_000_000_000;
const trade = (
  id: number,
  dt: number,
  px = 100 + id,
  side: Trade['side'] = id % 2 ? 'sell' : 'buy',
): Trade => ({
  id: String(id),
  ts: T0 + dt,
  px,
  qty: id / 10,
  side,
});

describe('trade files', () => {
  it('reads NDJSON in our Trade shape and ccxt shape, batching by symbol, window and size', async () => {
    const lines = [
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(1, 0) }),
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(2, 0) }),
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(3, 400) }),
      '',
      JSON.stringify({
        symbol: 'ETH/USDT',
        id: 7,
        timestamp: T0 + 500,
        price: 2000,
        amount: 0.5,
        side: 'buy',
      }),
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(4, 600) }),
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(5, 1600) }), // > 1 s after the batch's first trade
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(6, 1700) }),
      JSON.stringify({ symbol: 'BTC/USDT', ...trade(8, 1700) }),
    ];
    const path = fixture('mixed.ndjson', `${lines.join('\n')}\n`);
    const batches = await collect(replayFile(path, { batchMax: 2 }));
    expect(batches.map((b) => [b.symbol, b.trades.map((t) => t.id)])).toEqual([
      ['BTC/USDT', ['1', '2']],
      ['BTC/USDT', ['3']],
      ['ETH/USDT', ['7']],
      ['BTC/USDT', ['4']],
      ['BTC/USDT', ['5', '6']],
      ['BTC/USDT', ['8']],
    ]);
    expect(batches[2]!.trades[0]).toEqual({ id: '7', ts: T0 + 500, px: 2000, qty: 0.5, side: 'buy' });
    expect(batches[0]!.trades[1]).toEqual(trade(2, 0));
  });

  it('reads the simple id,ts,px,qty,side CSV, with or without a header, quoted fields, gzipped', async () => {
    const rows = [trade(1, 0), trade(2, 10), trade(3, 20)];
    const body = rows.map((t) => `${t.id},${t.ts},${t.px},${t.qty},${t.side}`).join('\r\n');
    const withHeader = fixture('simple.csv', `id,ts,px,qty,side\r\n${body}\r\n`);
    const bare = fixture('bare.csv.gz', `${body}\n`);
    for (const path of [withHeader, bare]) {
      const got = await collect(readTradeFile(path, { symbol: 'AAPL' }));
      expect(got).toEqual(rows.map((t) => ({ symbol: 'AAPL', trade: t })));
    }
    const iso = fixture(
      'iso.csv',
      'symbol,ts,price,size,id\n"BRK.B",2024-05-01T13:30:00.250Z,"410.5",3,"a,1"\n',
    );
    expect(await collect(readTradeFile(iso))).toEqual([
      {
        symbol: 'BRK.B',
        trade: { id: 'a,1', ts: Date.parse('2024-05-01T13:30:00.250Z'), px: 410.5, qty: 3 },
      },
    ]);
  });

  it('reads the ccxt/freqtrade CSV header and JSON-array rows [ts, id, type, side, price, amount, cost]', async () => {
    const csv = fixture(
      'ccxt.csv',
      'timestamp,id,type,side,price,amount,cost\n1570752011620,13519807,,sell,0.00141342,23.0,0.03250866\n',
    );
    const json = fixture(
      'rows.json.gz',
      '[[1570752011620,"13519807",null,"sell",0.00141342,23.0,0.03250866],\n [1570752011620,"13519808",null,"buy",0.00141266,54.0,0.07628364]]',
    );
    const want = { id: '13519807', ts: 1570752011620, px: 0.00141342, qty: 23, side: 'sell' };
    expect((await collect(readTradeFile(csv, { symbol: 'XRP/ETH' })))[0]!.trade).toEqual(want);
    const rows = await collect(readTradeFile(json, { symbol: 'XRP/ETH' }));
    expect(rows.map((r) => r.trade)).toEqual([
      want,
      { ...want, id: '13519808', px: 0.00141266, qty: 54, side: 'buy' },
    ]);
  });

  it('rejects bad rows and time going backwards with the place, or skips them through onInvalid', async () => {
    const path = fixture(
      'bad.ndjson',
      [trade(1, 100), { ...trade(2, 200), px: -1 }, 'not json', trade(3, 50), trade(4, 300)]
        .map((x) => (typeof x === 'string' ? x : JSON.stringify(x)))
        .join('\n'),
    );
    await expect(collect(readTradeFile(path, { symbol: 'X' }))).rejects.toThrow(ReplayFormatError);
    await expect(collect(readTradeFile(path, { symbol: 'X' }))).rejects.toThrow(/bad\.ndjson:2: px must be/);
    const skipped: string[] = [];
    const got = await collect(
      readTradeFile(path, { symbol: 'X', onInvalid: (where, why) => skipped.push(`${where} ${why}`) }),
    );
    expect(got.map((r) => r.trade.id)).toEqual(['1', '4']);
    expect(skipped).toEqual([
      expect.stringMatching(/:2 px must be/),
      expect.stringMatching(/:3 not JSON/),
      expect.stringMatching(/:4 ts \d+ goes back in time for X/),
    ]);
    await expect(collect(readTradeFile(join(dir, 'missing.ndjson'), { symbol: 'X' }))).rejects.toThrow(
      /ENOENT/,
    );
    await expect(collect(readTradeFile(join(dir, 'missing.json.gz'), { symbol: 'X' }))).rejects.toThrow(
      /ENOENT/,
    );
    await expect(collect(replayFile('trades.parquet'))).rejects.toThrow(/unknown trade file format/);
  });

  it('splits a JSON array into elements across any chunk boundary, strings included', async () => {
    const text = ' [ [1, "a]b", {"k": "x,\\"]"}], {"n": [2, 3]} , "s\\\\" ]\n';
    const want = ['[1, "a]b", {"k": "x,\\"]"}]', '{"n": [2, 3]}', '"s\\\\"'];
    async function* chunks(size: number) {
      for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
    }
    for (const size of [1, 2, 3, 7, text.length])
      expect(await collect(jsonArrayElements(chunks(size)))).toEqual(want);
    async function* of(s: string) {
      yield s;
    }
    expect(await collect(jsonArrayElements(of('[]')))).toEqual([]);
    await expect(collect(jsonArrayElements(of('[1, 2')))).rejects.toThrow(/cut off/);
    await expect(collect(jsonArrayElements(of('{"a": 1}')))).rejects.toThrow(/top-level array/);
    await expect(collect(jsonArrayElements(of('[1,,2]')))).rejects.toThrow(/empty array element/);
  });
});

describe('ReplayPacer', () => {
  const batchesAt = (...dts: number[]): ReplayBatch[] =>
    dts.map((dt, i) => ({ symbol: 'X', trades: [trade(i + 1, dt)] }));

  async function* source(batches: ReplayBatch[]) {
    yield* batches;
  }

  /** Consumes in the background; returns what has been released so far. */
  function consume(pacer: ReplayPacer, batches: ReplayBatch[], signal?: AbortSignal) {
    const released: string[] = [];
    const done = (async () => {
      for await (const b of pacer.pace(source(batches), signal)) released.push(b.trades[0]!.id);
    })();
    return { released, done };
  }

  const flush = () => new Promise((r) => setImmediate(r));

  it('lets trade-time deltas / speed elapse on the clock between batches', async () => {
    const clock = new FakeClock(0);
    // Trades at 0 s, 60 s, 90 s, 90 s and 150 s; at speed 60 that is 0, 1, 1.5, 1.5 and 2.5 s.
    const { released, done } = consume(
      new ReplayPacer(clock, 60),
      batchesAt(0, 60_000, 90_000, 90_000, 150_000),
    );
    await flush();
    expect(released).toEqual(['1']);
    clock.advance(999);
    await flush();
    expect(released).toEqual(['1']);
    clock.advance(1);
    await flush();
    expect(released).toEqual(['1', '2']);
    clock.advance(500);
    await flush();
    expect(released).toEqual(['1', '2', '3', '4']);
    clock.advance(999);
    await flush();
    expect(released).toHaveLength(4);
    clock.advance(1);
    await done;
    expect(released).toEqual(['1', '2', '3', '4', '5']);
  });

  it('replays real time at speed 1 and without waiting at Infinity', async () => {
    const clock = new FakeClock(0);
    const realTime = consume(new ReplayPacer(clock, 1), batchesAt(0, 5_000));
    await flush();
    clock.advance(4_999);
    await flush();
    expect(realTime.released).toEqual(['1']);
    clock.advance(1);
    await realTime.done;
    const fast = consume(new ReplayPacer(new FakeClock(0), Number.POSITIVE_INFINITY), batchesAt(0, 1e9, 2e9));
    await fast.done;
    expect(fast.released).toEqual(['1', '2', '3']);
    expect(() => new ReplayPacer(clock, 0)).toThrow(/speed/);
  });

  it('catches up without drifting when the consumer is slow, and stops on abort', async () => {
    const clock = new FakeClock(0);
    const pacer = new ReplayPacer(clock, 10);
    const seen: number[] = [];
    for await (const b of pacer.pace(source(batchesAt(0, 10_000, 20_000)))) {
      seen.push(clock.now());
      // A slow consumer: 2.5 s for the first batch. Batch 2 was due at 1 s, batch 3 at 2 s:
      // both go out at once, and the schedule stays anchored at the first batch.
      if (b.trades[0]!.id === '1') clock.advance(2_500);
      else if (b.trades[0]!.id === '2') expect(pacer.behindMs).toBe(1_500);
      else expect(pacer.behindMs).toBe(500);
    }
    expect(seen).toEqual([0, 2_500, 2_500]);

    const ac = new AbortController();
    const aborted = consume(new ReplayPacer(new FakeClock(0), 1), batchesAt(0, 60_000), ac.signal);
    await flush();
    ac.abort();
    await aborted.done;
    expect(aborted.released).toEqual(['1']);
  });
});

describe('replay from PostgreSQL (keyset pages over a stand-in pool)', () => {
  interface Row {
    exchange: string;
    symbol: string;
    id: string;
    ts: number;
    px: number;
    qty: number;
    side: string | null;
  }

  /** Answers the two statements replayFromDb sends the way PostgreSQL would. */
  function pool(rows: Row[] | null) {
    const query = vi.fn(async (sql: string, params: unknown[] = []) => {
      if (sql.includes('to_regclass')) return { rows: [{ t: rows ? 'trades' : null }] };
      const [ex, sym, from, to, afterTs, afterId, limit] = params as [
        string,
        string,
        number,
        number,
        number | null,
        string | null,
        number,
      ];
      const page = rows!
        .filter((r) => r.exchange === ex && r.symbol === sym && r.ts >= from && r.ts < to)
        .filter((r) => afterTs === null || r.ts > afterTs || (r.ts === afterTs && r.id > afterId!))
        .sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, limit)
        .map((r) => ({ id: r.id, ts: String(r.ts), px: r.px, qty: r.qty, side: r.side }));
      return { rows: page };
    });
    return { query, pool: { query } as unknown as Pool };
  }

  it('streams one series in (ts, id) order across pages, within [from, to)', async () => {
    const rows: Row[] = [];
    for (let i = 0; i < 23; i++)
      rows.push({
        exchange: 'binance',
        symbol: 'XRP/ETH',
        id: `t${String(50 - i).padStart(2, '0')}`,
        ts: T0 + Math.floor(i / 3) * 7,
        px: 1 + i,
        qty: i,
        side: i % 2 ? 'buy' : null,
      });
    rows.push({ exchange: 'binance', symbol: 'BTC/ETH', id: 'x', ts: T0, px: 1, qty: 1, side: 'sell' });
    const { query, pool: p } = pool(rows.reverse());
    const got = await collect(readTradesFromDb(p, 'binance', 'XRP/ETH', T0, T0 + 7 * 7, { pageSize: 4 }));
    expect(got).toHaveLength(21);
    expect(got.every((g) => g.symbol === 'XRP/ETH')).toBe(true);
    const keys = got.map((g) => [g.trade.ts, g.trade.id] as const);
    expect(keys).toEqual([...keys].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])));
    expect(got[0]!.trade).toEqual({ id: 't48', ts: T0, px: 3, qty: 2 });
    expect(got[1]!.trade).toEqual({ id: 't49', ts: T0, px: 2, qty: 1, side: 'buy' });
    expect(query).toHaveBeenCalledTimes(1 + 6); // the table check, then ⌈21 / 4⌉ pages
    const batches = await collect(
      replayFromDb(p, 'binance', 'XRP/ETH', T0, T0 + 1e6, { pageSize: 5, batchWindowMs: 10 }),
    );
    expect(batches.map((b) => b.trades.length)).toEqual([6, 6, 6, 5]);
  });

  it('says which table shape it expects when there is none', async () => {
    await expect(collect(replayFromDb(pool(null).pool, 'binance', 'XRP/ETH', 0, 1))).rejects.toThrow(
      /no trades table[\s\S]*CREATE TABLE trades/,
    );
  });
});

describe('batchTrades', () => {
  it('never exceeds the protocol batch limit', async () => {
    async function* many(): AsyncGenerator<SymbolTrade> {
      for (let i = 0; i < 12_000; i++) yield { symbol: 'X', trade: trade(i, 0) };
    }
    const sizes = (await collect(batchTrades(many(), { batchMax: 1e9 }))).map((b) => b.trades.length);
    expect(sizes).toEqual([5000, 5000, 2000]);
  });
});

// The recorded data (../shared/data) is not part of the repository; where it is present, read it.
const DATA = new URL('../../../shared/data/', import.meta.url);
const TRADES = new URL('binance-XRP_ETH-trades-2019-10.json.gz', DATA);
const CANDLES = new URL('UNITTEST_BTC-1m-2017-11.json.gz', DATA);

describe.runIf(existsSync(TRADES) && existsSync(CANDLES))('the recorded Binance and freqtrade files', () => {
  it('streams all 12,477 XRP/ETH trades in order, in batches of one second at most', async () => {
    let n = 0;
    let last = Number.NEGATIVE_INFINITY;
    let batches = 0;
    let first: Trade | undefined;
    for await (const b of replayFile(TRADES.pathname, { symbol: 'XRP/ETH' })) {
      batches++;
      expect(b.symbol).toBe('XRP/ETH');
      expect(b.trades.at(-1)!.ts - b.trades[0]!.ts).toBeLessThan(1000);
      for (const t of b.trades) {
        expect(t.ts).toBeGreaterThanOrEqual(last);
        last = t.ts;
        first ??= t;
        n++;
      }
    }
    expect(n).toBe(12_477);
    expect(batches).toBeLessThan(n);
    expect(first).toEqual({ id: '13519807', ts: 1570752011620, px: 0.00141342, qty: 23, side: 'sell' });
    expect(last).toBe(1570965568844);
  });

  it('reads the 13,681 1m candles', async () => {
    const candles = await collect(readCandleFile(CANDLES.pathname));
    expect(candles).toHaveLength(13_681);
    expect(candles[0]).toEqual({
      t: 1509836520000,
      o: 0.00162008,
      h: 0.00162008,
      l: 0.00162008,
      c: 0.00162008,
      vol: 108.14853839,
    });
    expect(candles.every((k, i) => i === 0 || k.t > candles[i - 1]!.t)).toBe(true);
  });
});
