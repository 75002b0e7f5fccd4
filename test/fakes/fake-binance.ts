/**
 * A local Binance spot that speaks what ccxt 4.5's real code sends and parses:
 *
 * REST (ccxt `urls.api.public` = `<restUrl>/api/v3`)
 *   GET /api/v3/exchangeInfo                      loadMarkets (spot only; see `configure`)
 *   GET /api/v3/aggTrades?symbol&fromId|startTime&endTime&limit
 *                                                 fetchTrades' default method: ids are aggregate
 *                                                 trade ids; fromId with a time window is an error
 *                                                 (-1128); a window over 1 h is an error (-1127);
 *                                                 limit defaults to 500, capped at 1000; results
 *                                                 ascending; no filter = the most recent `limit`
 *   GET /api/v3/trades, /api/v3/historicalTrades  raw trades (their own id space, like Binance)
 *   every answer carries X-MBX-USED-WEIGHT-1M (accumulated weight)
 *   faults: 429/418 with Retry-After, 5xx streaks, `refuseTrades` (a permanent -1100 error on the
 *   trade endpoints), `forgetHistory` (aggTrades no longer reach back: fromId below the oldest
 *   kept trade answers from there, as if the ids in between never existed)
 *
 * Websocket (ccxt `urls.api.ws.spot` = `<wsUrl>/ws`; ccxt dials `<wsUrl>/ws/<stream index>`)
 *   <- {"method":"SUBSCRIBE","params":["btcusdt@aggTrade",...],"id":N}
 *   -> {"result":null,"id":N}
 *   -> {"e":"aggTrade","E":..,"s":"BTCUSDT","a":id,"p":"..","q":"..","f":..,"l":..,"T":ts,"m":bool,"M":true}
 *   `@trade` streams get {"e":"trade",...,"t":rawId} frames whose ids are NOT the aggTrades ids
 *   (as on Binance), so a client mixing the two cannot match stream and REST trades.
 *   Keep-alive: ccxt sends ws ping control frames (every 180 s); `ws` answers them itself.
 *   `refuseConnections` answers upgrades 503 (streams unreachable while REST works); `emitBulk`
 *   writes pre-encoded frames straight to the sockets (benchmark firehose).
 */
import type { WebSocket } from 'ws';
import {
  allowPlainWebsocket,
  type CcxtLikeExchange,
  decimal,
  FakeCounters,
  type FakeFileSettings,
  type FakeTls,
  HttpFaults,
  type MalformedKind,
  parseFrame,
  rawSocket,
  type ScriptedTrade,
  sendFrame,
  startFakeServer,
  TradeTape,
  textFrame,
} from './fake-common.ts';

export interface FakeBinanceMarket {
  /** Binance id, e.g. BTCUSDT. */
  id: string;
  base: string;
  quote: string;
}

export const BINANCE_MARKETS: readonly FakeBinanceMarket[] = [
  { id: 'BTCUSDT', base: 'BTC', quote: 'USDT' },
  { id: 'ETHUSDT', base: 'ETH', quote: 'USDT' },
  { id: 'XRPUSDT', base: 'XRP', quote: 'USDT' },
];

/** The tape of a listed market nobody scripted. */
const NO_TRADES = new TradeTape([], 0);
/** Raw trade ids live in another range than aggregate ids, as on Binance. */
const RAW_ID_OFFSET = 7_000_000;
const WEIGHTS: Record<string, number> = {
  exchangeInfo: 20,
  aggTrades: 4,
  trades: 25,
  historicalTrades: 25,
};

export interface FakeBinanceOptions {
  /** Scripted trades per unified symbol (e.g. 'BTC/USDT'); ids must be increasing integers. */
  trades: Record<string, ScriptedTrade[]>;
  /** How many trades of each script have already happened (default 0). */
  happened?: number | Record<string, number>;
  /** Serve https:// and wss:// with this key and certificate instead of http:// and ws://. */
  tls?: FakeTls;
}

export async function startFakeBinance(opts: FakeBinanceOptions) {
  const tapes = new Map<string, TradeTape>(); // by Binance id
  const symbolToId = new Map<string, string>();
  for (const m of BINANCE_MARKETS) symbolToId.set(`${m.base}/${m.quote}`, m.id);
  for (const [symbol, script] of Object.entries(opts.trades)) {
    const id = symbolToId.get(symbol);
    if (!id) throw new Error(`fake binance has no market ${symbol}`);
    const happened = typeof opts.happened === 'number' ? opts.happened : (opts.happened?.[symbol] ?? 0);
    tapes.set(id, new TradeTape(script, happened));
  }
  const faults = new HttpFaults();
  const counters = new FakeCounters();
  const streams = new Map<WebSocket, Set<string>>(); // socket -> 'btcusdt@aggTrade', ...
  let silent = false;
  let held = false;
  const heldFrames: (() => void)[] = [];
  let weightUsed = 0;
  let refusedTrades = 0;

  const tapeOf = (symbol: string): TradeTape => {
    const id = symbolToId.get(symbol);
    const tape = id ? tapes.get(id) : undefined;
    if (!tape) throw new Error(`fake binance has no script for ${symbol}`);
    return tape;
  };

  const error = (status: number, code: number, msg: string) => ({
    status,
    body: JSON.stringify({ code, msg }),
  });

  /** An aggTrade stream frame, encoded by hand (the firehose path encodes millions). */
  const aggTradeFrame = (id: string, t: ScriptedTrade) => {
    const raw = Number(t.id) + RAW_ID_OFFSET;
    return `{"e":"aggTrade","E":${t.ts + 1},"s":"${id}","a":${t.id},"p":"${decimal(t.px)}","q":"${decimal(t.qty)}","f":${raw},"l":${raw},"T":${t.ts},"m":${t.side === 'sell'},"M":true}`;
  };

  const aggTrade = (t: ScriptedTrade) => {
    const raw = Number(t.id) + RAW_ID_OFFSET;
    return {
      a: Number(t.id),
      p: decimal(t.px),
      q: decimal(t.qty),
      f: raw,
      l: raw,
      T: t.ts,
      m: t.side === 'sell', // buyer is the maker: the taker sold
      M: true,
    };
  };

  const rawTrade = (t: ScriptedTrade) => ({
    id: Number(t.id) + RAW_ID_OFFSET,
    price: decimal(t.px),
    qty: decimal(t.qty),
    quoteQty: decimal(t.px * t.qty),
    time: t.ts,
    isBuyerMaker: t.side === 'sell',
    isBestMatch: true,
  });

  const intParam = (url: URL, name: string): number | undefined => {
    const v = url.searchParams.get(name);
    if (v === null) return undefined;
    const n = Number(v);
    return Number.isInteger(n) ? n : Number.NaN;
  };

  const server = await startFakeServer(
    (_req, url) => {
      const endpoint = url.pathname.replace(/^\/api\/v3\//, '');
      counters.countRest(endpoint);
      const fault = faults.next((status) =>
        status === 503
          ? 'Service Unavailable'
          : JSON.stringify({
              code: -1003,
              msg:
                status === 418
                  ? 'Way too much request weight used; IP banned.'
                  : 'Too much request weight used; current limit is 6000 request weight per 1 MINUTE.',
            }),
      );
      if (fault) return fault;
      weightUsed += WEIGHTS[endpoint] ?? 1;
      const headers = { 'x-mbx-used-weight-1m': String(weightUsed) };
      const answer = route(endpoint, url);
      return { ...answer, headers };
    },
    (ws, path) => {
      counters.wsConnections++;
      if (!path.startsWith('/ws')) {
        ws.close(1008, 'unknown path');
        return;
      }
      streams.set(ws, new Set());
      ws.on('close', () => streams.delete(ws));
      ws.on('message', (data) => {
        const msg = parseFrame(data);
        if (!msg) return;
        if (held) heldFrames.push(() => onClientFrame(ws, msg));
        else onClientFrame(ws, msg);
      });
    },
    opts.tls,
  );

  function onClientFrame(ws: WebSocket, msg: Record<string, unknown>): void {
    const params = Array.isArray(msg.params) ? (msg.params as string[]) : [];
    const mine = streams.get(ws);
    if (msg.method === 'SUBSCRIBE') {
      counters.subscribeMessages++;
      for (const p of params) mine?.add(p);
      sendFrame(ws, { result: null, id: msg.id });
    } else if (msg.method === 'UNSUBSCRIBE') {
      for (const p of params) mine?.delete(p);
      sendFrame(ws, { result: null, id: msg.id });
    } else {
      sendFrame(ws, { error: { code: 2, msg: `Invalid request: unknown method` }, id: msg.id ?? null });
    }
  }

  function route(endpoint: string, url: URL): { status: number; body: string } {
    if (endpoint === 'exchangeInfo') {
      return {
        status: 200,
        body: JSON.stringify({
          timezone: 'UTC',
          serverTime: Date.now(),
          rateLimits: [{ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 }],
          exchangeFilters: [],
          symbols: BINANCE_MARKETS.map(exchangeInfoSymbol),
        }),
      };
    }
    if (endpoint === 'aggTrades' || endpoint === 'trades' || endpoint === 'historicalTrades') {
      const id = url.searchParams.get('symbol');
      const tape = id ? tapes.get(id) : undefined;
      if (!id || !BINANCE_MARKETS.some((m) => m.id === id)) return error(400, -1121, 'Invalid symbol.');
      if (refusedTrades > 0) {
        refusedTrades--;
        return error(400, -1100, "Illegal characters found in parameter 'fromId'.");
      }
      const trades = tape ?? NO_TRADES;
      let limit = intParam(url, 'limit') ?? 500;
      if (!Number.isInteger(limit) || limit < 1)
        return error(400, -1100, "Illegal characters found in parameter 'limit'.");
      limit = Math.min(limit, 1000);
      if (endpoint === 'trades')
        return { status: 200, body: JSON.stringify(trades.restLast(limit).map(rawTrade)) };
      const fromId = intParam(url, 'fromId');
      if (endpoint === 'historicalTrades') {
        const from = fromId === undefined ? undefined : fromId - RAW_ID_OFFSET;
        const picked = from === undefined ? trades.restLast(limit) : trades.restFromId(from, limit);
        return { status: 200, body: JSON.stringify(picked.map(rawTrade)) };
      }
      const start = intParam(url, 'startTime');
      const end = intParam(url, 'endTime');
      if (fromId !== undefined && (start !== undefined || end !== undefined))
        return error(400, -1128, 'Combination of optional parameters invalid.');
      let picked: ScriptedTrade[];
      if (fromId !== undefined) {
        if (Number.isNaN(fromId)) return error(400, -1100, "Illegal characters found in parameter 'fromId'.");
        picked = trades.restFromId(fromId, limit);
      } else if (start !== undefined || end !== undefined) {
        const lo = start ?? (end as number) - 3_600_000;
        const hi = end ?? lo + 3_600_000;
        if (hi - lo > 3_600_000) return error(400, -1127, 'More than 1 hours between startTime and endTime.');
        picked = trades.restWindow(lo, hi, limit);
      } else {
        picked = trades.restLast(limit);
      }
      return { status: 200, body: JSON.stringify(picked.map(aggTrade)) };
    }
    return error(404, -1000, `no route ${endpoint}`);
  }

  /** Pushes frames for `trades` of market `id` to every subscriber of its trade streams. */
  function push(id: string, trades: ScriptedTrade[]): void {
    if (silent || trades.length === 0) return;
    const lower = id.toLowerCase();
    let agg: string[] | undefined; // encoded once, sent to every subscriber
    for (const [ws, subs] of streams) {
      const socket = rawSocket(ws);
      socket.cork(); // one write for the whole burst
      if (subs.has(`${lower}@aggTrade`)) {
        agg ??= trades.map((t) => aggTradeFrame(id, t));
        for (const frame of agg) sendFrame(ws, frame);
      }
      for (const t of trades) {
        if (subs.has(`${lower}@trade`)) {
          const raw = rawTrade(t);
          sendFrame(ws, {
            e: 'trade',
            E: t.ts + 1,
            s: id,
            t: raw.id,
            p: raw.price,
            q: raw.qty,
            T: t.ts,
            m: raw.isBuyerMaker,
            M: true,
          });
        }
      }
      socket.uncork();
    }
  }

  /**
   * The firehose: makes the next n trades of market `id` happen and writes their aggTrade frames,
   * pre-encoded as raw websocket frames, to every subscriber in one write per socket.
   */
  function pushBulk(id: string, trades: ScriptedTrade[]): void {
    if (silent || trades.length === 0) return;
    const stream = `${id.toLowerCase()}@aggTrade`;
    let bytes: Buffer | undefined;
    for (const [ws, subs] of streams) {
      if (!subs.has(stream) || ws.readyState !== ws.OPEN) continue;
      bytes ??= Buffer.concat(trades.map((t) => textFrame(aggTradeFrame(id, t))));
      rawSocket(ws).write(bytes);
    }
  }

  function malformedFrame(kind: MalformedKind, id: string): unknown {
    const base = { e: 'aggTrade', E: Date.now(), s: id };
    switch (kind) {
      case 'invalid-json':
        // Starts like JSON, so ccxt tries to parse it, fails, and hands the raw string on.
        return `{"e":"aggTrade","s":"${id}","a":`;
      case 'wrong-shape':
        return { ...base, a: { id: 1 }, p: ['1.0'], q: null, f: 'x', l: 'y', T: 'yesterday', m: 'maybe' };
      case 'missing-fields':
        return { ...base, p: '1.5', q: '2.0', m: true };
      case 'nan-price':
        return { ...base, a: 999_999_999, p: 'NaN', q: '1.0', f: 1, l: 1, T: Date.now(), m: false, M: true };
    }
  }

  return {
    restUrl: server.restUrl,
    wsUrl: server.wsUrl,
    counters,
    /** Points a ccxt binance (or binance pro) instance at this fake, spot markets only. */
    configure(exchange: CcxtLikeExchange): void {
      pointAtFakeBinance(exchange, server.restUrl, server.wsUrl);
    },
    /** The exchanges file's `ccxt` settings that point binance at this fake (the same as `configure`). */
    fileSettings(): FakeFileSettings {
      return fakeBinanceFileSettings(server.restUrl, server.wsUrl);
    },
    /** Makes the next n scripted trades of `symbol` happen (REST + streams); returns them. */
    emit(symbol: string, n: number): ScriptedTrade[] {
      const out = tapeOf(symbol).emit(n);
      push(symbolToId.get(symbol)!, out);
      return out;
    },
    /** Makes every scripted trade up to `ts` happen, for every symbol, in time order. */
    emitUntil(ts: number): void {
      for (const [id, tape] of tapes) push(id, tape.emitUntil(ts));
    },
    /** Same as emit, with pre-encoded frames written in one go (aggTrade streams only). */
    emitBulk(symbol: string, n: number): ScriptedTrade[] {
      const out = tapeOf(symbol).emit(n);
      pushBulk(symbolToId.get(symbol)!, out);
      return out;
    },
    /** Appends trades to the script of `symbol` (they happen on a later emit). */
    extend(symbol: string, trades: readonly ScriptedTrade[]): void {
      tapeOf(symbol).extend(trades);
    },
    /** REST stops reaching back before the last `keepLast` trades of `symbol` that happened. */
    forgetHistory(symbol: string, keepLast: number): void {
      tapeOf(symbol).forgetHistory(keepLast);
    },
    /** Keeps at most n happened trades of `symbol` in memory (long benchmark runs). */
    retain(symbol: string, n: number): void {
      tapeOf(symbol).retain(n);
    },
    /** The next n trade-history requests fail with a permanent error (-1100, HTTP 400). */
    refuseTrades(n: number): void {
      refusedTrades = n;
    },
    /** While on, websocket upgrades are refused (503): the stream is unreachable, REST is not. */
    refuseConnections: (on: boolean) => server.refuseConnections(on),
    /** Bytes written to subscribers but not yet taken by the kernel (firehose pacing). */
    backlogBytes(): number {
      let max = 0;
      for (const ws of streams.keys()) max = Math.max(max, rawSocket(ws).writableLength);
      return max;
    },
    /** Every trade of `symbol` that has happened: what a client should end up with. */
    allTrades(symbol: string): ScriptedTrade[] {
      return tapeOf(symbol).all();
    },
    remaining(symbol: string): number {
      return tapeOf(symbol).remaining;
    },
    /** Kills every websocket abruptly (no close frame: the client sees 1006). */
    dropConnections(): void {
      for (const ws of server.sockets) ws.terminate();
    },
    /** Sockets stay open (pings answered by `ws`), trades keep happening, no trade frames. */
    silence(on: boolean): void {
      silent = on;
    },
    /**
     * While on, (un)subscribe requests wait unanswered; turning it off processes them. Models a
     * subscription that only becomes effective some time after the socket opened.
     */
    holdSubscriptions(on: boolean): void {
      held = on;
      if (!on) for (const run of heldFrames.splice(0)) run();
    },
    /** Sends one garbled frame to every trade subscriber of `symbol` (default: every socket). */
    sendMalformed(kind: MalformedKind, symbol = 'BTC/USDT'): void {
      const id = symbolToId.get(symbol) ?? 'BTCUSDT';
      for (const [ws] of streams) sendFrame(ws, malformedFrame(kind, id));
    },
    rateLimit: (n: number, retryAfterSec: number) => faults.rateLimit(n, retryAfterSec),
    ban418: (n: number, retryAfterSec: number) => faults.ban418(n, retryAfterSec),
    fail5xx: (n: number) => faults.fail5xx(n),
    /** Streams each open socket is subscribed to. */
    subscriptions(): string[][] {
      return [...streams.values()].map((s) => [...s]);
    },
    openSockets: () => server.sockets.size,
    close: () => server.close(),
  };
}

export type FakeBinance = Awaited<ReturnType<typeof startFakeBinance>>;

/** The exchanges file's `ccxt.urls` and `ccxt.options` for a fake Binance on these urls. */
export function fakeBinanceFileSettings(restUrl: string, wsUrl: string): FakeFileSettings {
  const rest = `${restUrl}/api/v3`;
  return {
    urls: {
      api: { public: rest, private: rest, v1: rest, ws: { spot: `${wsUrl}/ws`, margin: `${wsUrl}/ws` } },
    },
    // Only spot exchangeInfo: otherwise loadMarkets also asks fapi/dapi for futures.
    options: { fetchMarkets: { types: ['spot'] }, fetchCurrencies: false },
  };
}

/** Points a ccxt binance (or binance pro) instance at a fake on these urls, spot markets only. */
export function pointAtFakeBinance(exchange: CcxtLikeExchange, restUrl: string, wsUrl: string): void {
  const api = exchange.urls.api as Record<string, unknown>;
  for (const key of ['public', 'private', 'v1']) api[key] = `${restUrl}/api/v3`;
  if (api.ws) api.ws = { ...(api.ws as object), spot: `${wsUrl}/ws`, margin: `${wsUrl}/ws` };
  // Only spot exchangeInfo: otherwise loadMarkets also asks fapi/dapi for futures.
  exchange.options.fetchMarkets = { ...(exchange.options.fetchMarkets as object), types: ['spot'] };
  exchange.options.fetchCurrencies = false;
  allowPlainWebsocket(exchange);
}

function exchangeInfoSymbol(m: FakeBinanceMarket) {
  return {
    symbol: m.id,
    status: 'TRADING',
    baseAsset: m.base,
    baseAssetPrecision: 8,
    quoteAsset: m.quote,
    quotePrecision: 8,
    quoteAssetPrecision: 8,
    baseCommissionPrecision: 8,
    quoteCommissionPrecision: 8,
    orderTypes: ['LIMIT', 'LIMIT_MAKER', 'MARKET'],
    icebergAllowed: true,
    ocoAllowed: true,
    quoteOrderQtyMarketAllowed: true,
    allowTrailingStop: true,
    cancelReplaceAllowed: true,
    isSpotTradingAllowed: true,
    isMarginTradingAllowed: false,
    filters: [
      {
        filterType: 'PRICE_FILTER',
        minPrice: '0.01000000',
        maxPrice: '1000000.00000000',
        tickSize: '0.01000000',
      },
      { filterType: 'LOT_SIZE', minQty: '0.00001000', maxQty: '9000.00000000', stepSize: '0.00001000' },
    ],
    permissions: [],
    permissionSets: [['SPOT']],
    defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
    allowedSelfTradePreventionModes: ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
  };
}
