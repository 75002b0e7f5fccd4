/**
 * A local Kraken spot that speaks what ccxt 4.5's real code sends and parses:
 *
 * REST (ccxt `urls.api.public` = `<restUrl>`; ccxt builds `/0/public/<Method>`)
 *   GET /0/public/Assets                    loadMarkets (fetchCurrencies)
 *   GET /0/public/AssetPairs                loadMarkets (fetchMarkets)
 *   GET /0/public/Trades?pair&since&count   fetchTrades: `since` in seconds (ccxt sends
 *        whole seconds) or a nanosecond cursor (`last`); trades at or after it, ascending, at most
 *        `count` (default and cap 1000); without `since` the most recent `count`. Each trade is
 *        [price, volume, time (s, float), "b"|"s", "m"|"l", misc, trade_id], plus `last`.
 *   Errors are HTTP status + {"error":["EGeneral:Too many requests"]}-style bodies, which
 *   ccxt maps by message (DDoSProtection, ExchangeNotAvailable).
 *   Faults: 429/418 with Retry-After, 5xx streaks, `refuseTrades` (EGeneral:Invalid arguments, a
 *   permanent error), `forgetHistory` (Trades no longer reaches back), `refuseConnections`.
 *
 * Websocket v2 (ccxt `urls.api.ws.publicV2` = `<wsUrl>/v2`; ccxt.pro kraken uses only v2 for
 * public data)
 *   -> {"channel":"status","type":"update","data":[{..."system":"online"}]}   on connect
 *   <- {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]},"req_id":N}
 *   -> {"method":"subscribe","result":{"channel":"trade","symbol":"BTC/USD","snapshot":true},
 *       "success":true,"req_id":N,...}                                     one ack per symbol
 *   -> {"channel":"trade","type":"snapshot","data":[...the last 50 trades]}  Kraken replays!
 *   -> {"channel":"trade","type":"update","data":[{"symbol","side","price","qty","ord_type",
 *       "trade_id","timestamp":"...Z"}]}
 *   <- {"method":"ping","req_id":N}  -> {"method":"pong","req_id":N,...}  ccxt's keep-alive (6 s);
 *      without pongs ccxt drops the connection after two missed intervals.
 */
import type { WebSocket } from 'ws';
import {
  allowPlainWebsocket,
  type CcxtLikeExchange,
  FakeCounters,
  type FakeFileSettings,
  HttpFaults,
  type MalformedKind,
  parseFrame,
  type ScriptedTrade,
  sendFrame,
  startFakeServer,
  TradeTape,
} from './fake-common.ts';

export interface FakeKrakenPair {
  /** Kraken pair id (REST), e.g. XXBTZUSD. */
  id: string;
  altname: string;
  /** v1 websocket name (Kraken still lists it in AssetPairs). */
  wsname: string;
  base: string;
  quote: string;
  /** The unified symbol ccxt derives, which is also the v2 websocket symbol. */
  symbol: string;
}

export const KRAKEN_PAIRS: readonly FakeKrakenPair[] = [
  { id: 'XXBTZUSD', altname: 'XBTUSD', wsname: 'XBT/USD', base: 'XXBT', quote: 'ZUSD', symbol: 'BTC/USD' },
  { id: 'XETHZUSD', altname: 'ETHUSD', wsname: 'ETH/USD', base: 'XETH', quote: 'ZUSD', symbol: 'ETH/USD' },
  { id: 'SOLUSD', altname: 'SOLUSD', wsname: 'SOL/USD', base: 'SOL', quote: 'ZUSD', symbol: 'SOL/USD' },
];

const ASSETS: Record<string, { altname: string; decimals: number; display_decimals: number }> = {
  XXBT: { altname: 'XBT', decimals: 10, display_decimals: 5 },
  XETH: { altname: 'ETH', decimals: 10, display_decimals: 5 },
  SOL: { altname: 'SOL', decimals: 10, display_decimals: 5 },
  ZUSD: { altname: 'USD', decimals: 4, display_decimals: 2 },
};

/** How many recent trades Kraken replays on subscribe. */
const SNAPSHOT_SIZE = 50;

export interface FakeKrakenOptions {
  /** Scripted trades per unified symbol (e.g. 'BTC/USD'); ids must be increasing integers. */
  trades: Record<string, ScriptedTrade[]>;
  happened?: number | Record<string, number>;
}

export async function startFakeKraken(opts: FakeKrakenOptions) {
  const bySymbol = new Map(KRAKEN_PAIRS.map((p) => [p.symbol, p]));
  const tapes = new Map<string, TradeTape>(); // by unified symbol
  for (const [symbol, script] of Object.entries(opts.trades)) {
    if (!bySymbol.has(symbol)) throw new Error(`fake kraken has no pair ${symbol}`);
    const happened = typeof opts.happened === 'number' ? opts.happened : (opts.happened?.[symbol] ?? 0);
    tapes.set(symbol, new TradeTape(script, happened));
  }
  const faults = new HttpFaults();
  const counters = new FakeCounters();
  const subscribed = new Map<WebSocket, Set<string>>(); // socket -> symbols on the trade channel
  let silent = false;
  let held = false;
  const heldFrames: (() => void)[] = [];
  let connectionId = 1;
  let refusedTrades = 0;

  const tapeOf = (symbol: string): TradeTape => {
    const tape = tapes.get(symbol);
    if (!tape) throw new Error(`fake kraken has no script for ${symbol}`);
    return tape;
  };
  const ok = (result: unknown) => ({ status: 200, body: JSON.stringify({ error: [], result }) });
  const fail = (status: number, message: string) => ({
    status,
    body: JSON.stringify({ error: [message] }),
  });

  const restTrade = (t: ScriptedTrade) => [
    t.px.toFixed(5),
    t.qty.toFixed(8),
    t.ts / 1000,
    t.side === 'buy' ? 'b' : 's',
    'l',
    '',
    Number(t.id),
  ];
  const wsTrade = (symbol: string, t: ScriptedTrade) => ({
    symbol,
    side: t.side,
    price: t.px,
    qty: t.qty,
    ord_type: 'limit',
    trade_id: Number(t.id),
    timestamp: new Date(t.ts).toISOString().replace('Z', '000Z'), // Kraken prints microseconds
  });
  const nowIso = () => new Date().toISOString();

  const server = await startFakeServer(
    (_req, url) => {
      const endpoint = url.pathname.replace(/^\/0\/public\//, '');
      counters.countRest(endpoint);
      const fault = faults.next((status) =>
        JSON.stringify({
          error: [
            status === 429
              ? 'EGeneral:Too many requests'
              : status === 418
                ? 'EGeneral:Temporary lockout'
                : 'EService:Unavailable',
          ],
        }),
      );
      if (fault) return fault;
      return route(endpoint, url);
    },
    (ws, path) => {
      counters.wsConnections++;
      if (path !== '/v2') {
        ws.close(1008, 'unknown path');
        return;
      }
      subscribed.set(ws, new Set());
      ws.on('close', () => subscribed.delete(ws));
      sendFrame(ws, {
        channel: 'status',
        type: 'update',
        data: [{ version: '2.0.10', system: 'online', api_version: 'v2', connection_id: connectionId++ }],
      });
      ws.on('message', (data) => onClientFrame(ws, parseFrame(data)));
    },
  );

  function onClientFrame(ws: WebSocket, msg: Record<string, unknown> | undefined): void {
    if (!msg) return;
    const reqId = msg.req_id;
    if (msg.method === 'ping') {
      counters.pings++;
      sendFrame(ws, { method: 'pong', req_id: reqId, time_in: nowIso(), time_out: nowIso() });
      return;
    }
    if (msg.method !== 'subscribe' && msg.method !== 'unsubscribe') {
      sendFrame(ws, { error: 'Method not found', method: msg.method, req_id: reqId, success: false });
      return;
    }
    if (held) {
      heldFrames.push(() => onClientFrame(ws, msg));
      return;
    }
    const params = (msg.params ?? {}) as { channel?: string; symbol?: string[] };
    if (params.channel !== 'trade') {
      sendFrame(ws, { error: 'Channel not supported', method: msg.method, req_id: reqId, success: false });
      return;
    }
    const mine = subscribed.get(ws)!;
    if (msg.method === 'subscribe') counters.subscribeMessages++;
    for (const symbol of params.symbol ?? []) {
      if (!bySymbol.has(symbol)) {
        sendFrame(ws, {
          error: `Currency pair not supported ${symbol}`,
          method: msg.method,
          req_id: reqId,
          success: false,
          symbol,
          time_in: nowIso(),
          time_out: nowIso(),
        });
        continue;
      }
      if (msg.method === 'unsubscribe') {
        mine.delete(symbol);
        sendFrame(ws, {
          method: 'unsubscribe',
          result: { channel: 'trade', symbol },
          success: true,
          req_id: reqId,
        });
        continue;
      }
      mine.add(symbol);
      sendFrame(ws, {
        method: 'subscribe',
        result: { channel: 'trade', snapshot: true, symbol },
        success: true,
        time_in: nowIso(),
        time_out: nowIso(),
        req_id: reqId,
      });
      const recent = tapes.get(symbol)?.recent(SNAPSHOT_SIZE) ?? [];
      if (!silent && recent.length > 0)
        sendFrame(ws, { channel: 'trade', type: 'snapshot', data: recent.map((t) => wsTrade(symbol, t)) });
    }
  }

  function route(endpoint: string, url: URL): { status: number; body: string } {
    if (endpoint === 'Assets') {
      const result: Record<string, unknown> = {};
      for (const [id, a] of Object.entries(ASSETS))
        result[id] = { aclass: 'currency', ...a, status: 'enabled' };
      return ok(result);
    }
    if (endpoint === 'AssetPairs') {
      const result: Record<string, unknown> = {};
      for (const p of KRAKEN_PAIRS) result[p.id] = assetPair(p);
      return ok(result);
    }
    if (endpoint === 'Trades') {
      const pairId = url.searchParams.get('pair');
      const pair = KRAKEN_PAIRS.find((p) => p.id === pairId || p.altname === pairId);
      if (!pair) return fail(200, 'EQuery:Unknown asset pair');
      if (refusedTrades > 0) {
        refusedTrades--;
        return fail(200, 'EGeneral:Invalid arguments');
      }
      const tape = tapes.get(pair.symbol);
      const countParam = url.searchParams.get('count');
      const count = countParam === null ? 1000 : Math.min(1000, Math.max(1, Number(countParam)));
      if (!Number.isFinite(count)) return fail(200, 'EGeneral:Invalid arguments:count');
      const since = url.searchParams.get('since');
      let picked: ScriptedTrade[];
      if (since === null) {
        picked = tape?.restLast(count) ?? [];
      } else {
        if (!/^\d+$/.test(since)) return fail(200, 'EGeneral:Invalid arguments:since');
        // Up to 10 digits: seconds; longer: Kraken's nanosecond cursor.
        const sinceMs = since.length <= 10 ? Number(since) * 1000 : Number(BigInt(since) / 1_000_000n);
        picked = tape?.restSince(sinceMs, count) ?? [];
      }
      const lastNs = picked.length > 0 ? BigInt(picked.at(-1)!.ts) * 1_000_000n : BigInt(since ?? 0);
      return ok({ [pair.id]: picked.map(restTrade), last: String(lastNs) });
    }
    return fail(404, `EGeneral:Unknown method ${endpoint}`);
  }

  function push(symbol: string, trades: ScriptedTrade[]): void {
    if (silent || trades.length === 0) return;
    for (const [ws, symbols] of subscribed) {
      if (!symbols.has(symbol)) continue;
      // Kraken batches trades of one symbol per frame; one frame per trade keeps it simple.
      for (const t of trades) sendFrame(ws, { channel: 'trade', type: 'update', data: [wsTrade(symbol, t)] });
    }
  }

  function malformedFrame(kind: MalformedKind, symbol: string): unknown {
    const ts = new Date().toISOString();
    switch (kind) {
      case 'invalid-json':
        return '{"channel":"trade","type":"update","data":[{"symbol":';
      case 'wrong-shape':
        return { channel: 'trade', type: 'update', data: { symbol, price: [1], qty: {} } };
      case 'missing-fields':
        return { channel: 'trade', type: 'update', data: [{ symbol, side: 'buy', price: 1.5 }] };
      case 'nan-price':
        return {
          channel: 'trade',
          type: 'update',
          data: [
            {
              symbol,
              side: 'buy',
              price: 'NaN',
              qty: 1,
              ord_type: 'limit',
              trade_id: 999_999_999,
              timestamp: ts,
            },
          ],
        };
    }
  }

  return {
    restUrl: server.restUrl,
    wsUrl: server.wsUrl,
    counters,
    /** Points a ccxt kraken (or kraken pro) instance at this fake. */
    configure(exchange: CcxtLikeExchange): void {
      const api = exchange.urls.api as Record<string, unknown>;
      api.public = server.restUrl;
      api.private = server.restUrl;
      if (api.ws)
        api.ws = { ...(api.ws as object), publicV2: `${server.wsUrl}/v2`, public: `${server.wsUrl}/v1` };
      allowPlainWebsocket(exchange);
    },
    /** The exchanges file's `ccxt` settings that point kraken at this fake (the same as `configure`). */
    fileSettings(): FakeFileSettings {
      return {
        urls: {
          api: {
            public: server.restUrl,
            private: server.restUrl,
            ws: { publicV2: `${server.wsUrl}/v2`, public: `${server.wsUrl}/v1` },
          },
        },
        options: {},
      };
    },
    emit(symbol: string, n: number): ScriptedTrade[] {
      const out = tapeOf(symbol).emit(n);
      push(symbol, out);
      return out;
    },
    emitUntil(ts: number): void {
      for (const [symbol, tape] of tapes) push(symbol, tape.emitUntil(ts));
    },
    allTrades(symbol: string): ScriptedTrade[] {
      return tapeOf(symbol).all();
    },
    remaining(symbol: string): number {
      return tapeOf(symbol).remaining;
    },
    /** Appends trades to the script of `symbol` (they happen on a later emit). */
    extend(symbol: string, trades: readonly ScriptedTrade[]): void {
      tapeOf(symbol).extend(trades);
    },
    /** REST stops reaching back before the last `keepLast` trades of `symbol` that happened. */
    forgetHistory(symbol: string, keepLast: number): void {
      tapeOf(symbol).forgetHistory(keepLast);
    },
    /** The next n Trades requests fail with a permanent error (EGeneral:Invalid arguments). */
    refuseTrades(n: number): void {
      refusedTrades = n;
    },
    /** While on, websocket upgrades are refused (503): the stream is unreachable, REST is not. */
    refuseConnections: (on: boolean) => server.refuseConnections(on),
    dropConnections(): void {
      for (const ws of server.sockets) ws.terminate();
    },
    /** Sockets stay open and pings are answered; no trade frames (not even snapshots). */
    silence(on: boolean): void {
      silent = on;
    },
    /** While on, (un)subscribe requests wait unanswered (pings are still answered). */
    holdSubscriptions(on: boolean): void {
      held = on;
      if (!on) for (const run of heldFrames.splice(0)) run();
    },
    sendMalformed(kind: MalformedKind, symbol = 'BTC/USD'): void {
      for (const [ws] of subscribed) sendFrame(ws, malformedFrame(kind, symbol));
    },
    rateLimit: (n: number, retryAfterSec: number) => faults.rateLimit(n, retryAfterSec),
    ban418: (n: number, retryAfterSec: number) => faults.ban418(n, retryAfterSec),
    fail5xx: (n: number) => faults.fail5xx(n),
    subscriptions(): string[][] {
      return [...subscribed.values()].map((s) => [...s]);
    },
    openSockets: () => server.sockets.size,
    close: () => server.close(),
  };
}

export type FakeKraken = Awaited<ReturnType<typeof startFakeKraken>>;

function assetPair(p: FakeKrakenPair) {
  return {
    altname: p.altname,
    wsname: p.wsname,
    aclass_base: 'currency',
    base: p.base,
    aclass_quote: 'currency',
    quote: p.quote,
    lot: 'unit',
    cost_decimals: 5,
    pair_decimals: 1,
    lot_decimals: 8,
    lot_multiplier: 1,
    leverage_buy: [],
    leverage_sell: [],
    fees: [[0, 0.26]],
    fees_maker: [[0, 0.16]],
    fee_volume_currency: 'ZUSD',
    margin_call: 80,
    margin_stop: 40,
    ordermin: '0.0001',
    costmin: '0.5',
    tick_size: '0.1',
    status: 'online',
  };
}
