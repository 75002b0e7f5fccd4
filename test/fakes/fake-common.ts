/**
 * What the fake exchanges share: a scripted trade tape per symbol, HTTP faults (429/418 with
 * Retry-After, 5xx streaks), counters, and one HTTP + websocket server on 127.0.0.1 with a
 * random free port. Each fake (fake-binance.ts, fake-kraken.ts) only adds its protocol: the REST
 * routes and the websocket frames that ccxt's real code expects.
 */
import { once } from 'node:events';
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Trade } from '../../core/protocol/index.ts';

/** A scripted trade: like a tickmesh Trade, with a side always present. */
export type ScriptedTrade = Trade & { side: 'buy' | 'sell' };

/** The ways a fake can garble a websocket frame (see each fake for the exact bytes). */
export type MalformedKind = 'invalid-json' | 'wrong-shape' | 'missing-fields' | 'nan-price';

/**
 * One symbol's scripted trades: the first `happened` have happened (visible over REST); `emit`
 * makes the next ones happen. The script itself must be in exchange order (ids and ts ascending,
 * ids numeric); `extend` appends to it (a generated firehose). REST lookups search by id or
 * time (binary search), so a long tape stays cheap to serve.
 *
 * Two limits model an exchange that does not keep everything: `forgetHistory` makes REST stop
 * reaching back before the last n trades (a repair from further back finds a hole), `retain`
 * bounds the tape's memory (a long benchmark run).
 */
export class TradeTape {
  private readonly trades: ScriptedTrade[] = [];
  /** Trades dropped from memory at the front (absolute index of trades[0]). */
  private dropped = 0;
  /** Absolute index of the next trade to happen. */
  private happened: number;
  /** Absolute index of the oldest trade REST still serves. */
  private restFrom = 0;
  private keep = Number.POSITIVE_INFINITY;

  constructor(script: readonly ScriptedTrade[], alreadyHappened: number) {
    this.extend(script);
    this.happened = Math.min(alreadyHappened, script.length);
  }

  /** Appends trades to the script (they have not happened yet). */
  extend(more: readonly ScriptedTrade[]): void {
    let prev = this.trades.at(-1);
    for (const b of more) {
      if (prev && !(Number(b.id) > Number(prev.id) && b.ts >= prev.ts))
        throw new Error(
          `script out of order at index ${this.dropped + this.trades.length} (${prev.id}@${prev.ts} then ${b.id}@${b.ts})`,
        );
      this.trades.push(b);
      prev = b;
    }
  }

  /** Makes up to n more trades happen and returns them. */
  emit(n: number): ScriptedTrade[] {
    const from = this.happened - this.dropped;
    const out = this.trades.slice(from, from + n);
    this.happened += out.length;
    this.trim();
    return out;
  }

  /** Makes every scripted trade with ts <= `ts` happen and returns them. */
  emitUntil(ts: number): ScriptedTrade[] {
    let n = 0;
    const from = this.happened - this.dropped;
    while (from + n < this.trades.length && this.trades[from + n]!.ts <= ts) n++;
    return this.emit(n);
  }

  /** What has happened so far (and is still in memory): the truth tests compare against. */
  all(): ScriptedTrade[] {
    return this.trades.slice(0, this.happened - this.dropped);
  }

  /** The last n trades that happened (what a websocket snapshot replays). */
  recent(n: number): ScriptedTrade[] {
    const end = this.happened - this.dropped;
    return this.trades.slice(Math.max(0, end - n), end);
  }

  get remaining(): number {
    return this.dropped + this.trades.length - this.happened;
  }

  /** From now on REST serves only the last `keepLast` trades that have happened so far (and later ones). */
  forgetHistory(keepLast: number): void {
    this.restFrom = Math.max(this.restFrom, this.happened - keepLast);
  }

  /** Keeps at most `n` happened trades in memory (older ones are gone, for REST too). */
  retain(n: number): void {
    this.keep = n;
    this.trim();
  }

  /** REST: trades with id >= `id`, ascending, at most `limit`. */
  restFromId(id: number, limit: number): ScriptedTrade[] {
    const [lo, hi] = this.restRange();
    return this.slice(
      this.lowerBound(lo, hi, (t) => Number(t.id) >= id),
      hi,
      limit,
    );
  }

  /** REST: trades with lo <= ts <= hi, ascending, at most `limit`. */
  restWindow(loTs: number, hiTs: number, limit: number): ScriptedTrade[] {
    const [lo, hi] = this.restRange();
    const from = this.lowerBound(lo, hi, (t) => t.ts >= loTs);
    const to = this.lowerBound(from, hi, (t) => t.ts > hiTs);
    return this.slice(from, to, limit);
  }

  /** REST: trades with ts >= `ts`, ascending, at most `limit`. */
  restSince(ts: number, limit: number): ScriptedTrade[] {
    const [lo, hi] = this.restRange();
    return this.slice(
      this.lowerBound(lo, hi, (t) => t.ts >= ts),
      hi,
      limit,
    );
  }

  /** REST without a cursor: the most recent `limit`. */
  restLast(limit: number): ScriptedTrade[] {
    const [lo, hi] = this.restRange();
    return this.slice(Math.max(lo, hi - limit), hi, limit);
  }

  /** Indexes into `trades` of what REST may serve: [lo, hi). */
  private restRange(): [number, number] {
    return [Math.max(0, this.restFrom - this.dropped), this.happened - this.dropped];
  }

  private slice(from: number, to: number, limit: number): ScriptedTrade[] {
    return this.trades.slice(from, Math.min(to, from + limit));
  }

  /** First index in [lo, hi) where `pred` holds (pred is monotone over the tape). */
  private lowerBound(lo: number, hi: number, pred: (t: ScriptedTrade) => boolean): number {
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pred(this.trades[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private trim(): void {
    const excess = this.happened - this.dropped - this.keep;
    // Drop in chunks: splicing the front of a large array on every emit would be quadratic.
    if (excess > 0 && excess >= Math.min(10_000, this.keep)) {
      this.trades.splice(0, excess);
      this.dropped += excess;
    }
  }
}

/** A deterministic script: ids from `firstId`, ts from `start` every `stepMs`, a gentle walk. */
export function scriptTrades(opts: {
  count: number;
  start: number;
  stepMs: number;
  firstId?: number;
  px?: number;
}): ScriptedTrade[] {
  const out: ScriptedTrade[] = [];
  let px = opts.px ?? 100;
  for (let i = 0; i < opts.count; i++) {
    px = Math.round((px + (i % 7 < 3 ? 0.25 : -0.125)) * 1000) / 1000;
    out.push({
      id: String((opts.firstId ?? 1000) + i),
      ts: opts.start + i * opts.stepMs,
      px,
      qty: Math.round((0.5 + (i % 5) * 0.125) * 1e6) / 1e6,
      side: i % 3 === 0 ? 'sell' : 'buy',
    });
  }
  return out;
}

/** An HTTP answer a fault substitutes for the real one. */
export interface FaultAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Pending HTTP faults, consumed one per REST call, in the order rate limit > ban > 5xx. */
export class HttpFaults {
  private limited = { n: 0, retryAfterSec: 0 };
  private banned = { n: 0, retryAfterSec: 0 };
  private failing = 0;

  rateLimit(n: number, retryAfterSec: number): void {
    this.limited = { n, retryAfterSec };
  }

  ban418(n: number, retryAfterSec: number): void {
    this.banned = { n, retryAfterSec };
  }

  fail5xx(n: number): void {
    this.failing = n;
  }

  /** The fault for this call, if any, with an exchange-flavoured body from `body`. */
  next(body: (status: number) => string): FaultAnswer | null {
    if (this.limited.n > 0) {
      this.limited.n--;
      return {
        status: 429,
        headers: { 'retry-after': String(this.limited.retryAfterSec) },
        body: body(429),
      };
    }
    if (this.banned.n > 0) {
      this.banned.n--;
      return {
        status: 418,
        headers: { 'retry-after': String(this.banned.retryAfterSec) },
        body: body(418),
      };
    }
    if (this.failing > 0) {
      this.failing--;
      return { status: 503, headers: {}, body: body(503) };
    }
    return null;
  }
}

/** Counters a test reads to check what the client did. */
export class FakeCounters {
  readonly rest = new Map<string, number>();
  wsConnections = 0;
  subscribeMessages = 0;
  /** Ping requests answered at the protocol level (JSON pings, not ws control frames). */
  pings = 0;

  countRest(endpoint: string): void {
    this.rest.set(endpoint, (this.rest.get(endpoint) ?? 0) + 1);
  }

  restCalls(endpoint?: string): number {
    if (endpoint !== undefined) return this.rest.get(endpoint) ?? 0;
    let total = 0;
    for (const n of this.rest.values()) total += n;
    return total;
  }
}

export type HttpHandler = (
  req: IncomingMessage,
  url: URL,
) => { status: number; headers?: Record<string, string>; body: string };

/** A server key and certificate (PEM) for a fake that speaks TLS. */
export interface FakeTls {
  key: string;
  cert: string;
}

export interface FakeServer {
  restUrl: string;
  wsUrl: string;
  sockets: Set<WebSocket>;
  /** While on, websocket upgrades are answered 503 (the exchange is unreachable for streams). */
  refuseConnections(on: boolean): void;
  close(): Promise<void>;
}

/**
 * Starts HTTP and websocket on one port of 127.0.0.1. `onSocket` gets every accepted websocket
 * with the path it asked for. HTTP responses are JSON unless the handler says otherwise.
 */
export async function startFakeServer(
  onHttp: HttpHandler,
  onSocket: (ws: WebSocket, path: string) => void,
  tls?: FakeTls,
): Promise<FakeServer> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let answer: ReturnType<HttpHandler>;
    try {
      answer = onHttp(req, url);
    } catch (err) {
      answer = { status: 500, body: JSON.stringify({ error: String(err) }) };
    }
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(answer.body);
  };
  const server: Server = tls ? createHttpsServer(tls, handle) : createServer(handle);
  let refusing = false;
  const wss = new WebSocketServer({
    server,
    verifyClient: (_info, done) => (refusing ? done(false, 503, 'Service Unavailable') : done(true)),
  });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('error', () => {});
    onSocket(ws, req.url ?? '/');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    restUrl: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    wsUrl: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    sockets,
    refuseConnections(on: boolean) {
      refusing = on;
    },
    async close() {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends a frame if the socket is open (a socket closing under us is not the test's failure). */
export function sendFrame(ws: WebSocket, frame: unknown): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
}

/**
 * One unmasked websocket text frame (server to client), ready to write to the socket: lets a
 * fake encode thousands of frames ahead and hand them to the kernel in one write.
 */
export function textFrame(payload: string): Buffer {
  const body = Buffer.from(payload);
  const n = body.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : Buffer.alloc(4);
  if (n >= 126) {
    if (n > 0xffff) throw new Error('textFrame: payload over 64 KiB');
    head[0] = 0x81;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  }
  return Buffer.concat([head, body]);
}

/** The TCP socket under a `ws` server socket (for raw pre-encoded frames). */
export function rawSocket(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/** Parses a client frame; undefined when it is not JSON. */
export function parseFrame(data: unknown): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(String(data));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A number printed the way exchanges print decimals: a string without exponent. */
export function decimal(x: number, digits = 8): string {
  return x.toFixed(digits);
}

/** What an exchanges file's `ccxt` entry needs to point an exchange at a fake: `urls`, `options`. */
export interface FakeFileSettings {
  urls: Record<string, unknown>;
  options: Record<string, unknown>;
}

/** The parts of a ccxt instance `configure` touches (typed loosely: ccxt's own types are loose). */
export interface CcxtLikeExchange {
  urls: Record<string, unknown>;
  options: Record<string, unknown>;
  httpAgent?: unknown;
}

/**
 * ccxt refuses `ws://` URLs unless the instance has a plain HTTP agent (it throws NotSupported
 * "at first run `await exchange.loadHttpProxyAgent()`"); that method only creates this agent,
 * so `configure` can do it synchronously.
 */
export function allowPlainWebsocket(exchange: { httpAgent?: unknown }): void {
  exchange.httpAgent ??= new Agent({ keepAlive: true });
}

/** A local port nothing listens on (a closed port: connections are refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
