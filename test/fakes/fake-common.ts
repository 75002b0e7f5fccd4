/**
 * What the fake exchanges share: a scripted trade tape per symbol, HTTP faults (429/418 with
 * Retry-After, 5xx streaks), counters, and one HTTP + websocket server on 127.0.0.1 with a
 * random free port. Each fake (fake-binance.ts, fake-kraken.ts) only adds its protocol: the REST
 * routes and the websocket frames that ccxt's real code expects.
 */
import { once } from 'node:events';
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Trade } from '../../core/protocol/index.ts';

/** A scripted trade: like a tickmesh Trade, with a side always present. */
export type ScriptedTrade = Trade & { side: 'buy' | 'sell' };

/** The ways a fake can garble a websocket frame (see each fake for the exact bytes). */
export type MalformedKind = 'invalid-json' | 'wrong-shape' | 'missing-fields' | 'nan-price';

/**
 * One symbol's scripted trades: the first `happened` have happened (visible over REST); `emit`
 * makes the next ones happen. The script itself must be in exchange order (ids and ts ascending).
 */
export class TradeTape {
  private happened: number;

  constructor(
    readonly script: readonly ScriptedTrade[],
    alreadyHappened: number,
  ) {
    for (let i = 1; i < script.length; i++) {
      const a = script[i - 1]!;
      const b = script[i]!;
      if (!(Number(b.id) > Number(a.id) && b.ts >= a.ts))
        throw new Error(`script out of order at index ${i} (${a.id}@${a.ts} then ${b.id}@${b.ts})`);
    }
    this.happened = Math.min(alreadyHappened, script.length);
  }

  /** Makes up to n more trades happen and returns them. */
  emit(n: number): ScriptedTrade[] {
    const out = this.script.slice(this.happened, this.happened + n);
    this.happened += out.length;
    return out;
  }

  /** Makes every scripted trade with ts <= `ts` happen and returns them. */
  emitUntil(ts: number): ScriptedTrade[] {
    let n = 0;
    while (this.happened + n < this.script.length && this.script[this.happened + n]!.ts <= ts) n++;
    return this.emit(n);
  }

  /** What has happened so far: the truth tests compare against. */
  all(): ScriptedTrade[] {
    return this.script.slice(0, this.happened);
  }

  get remaining(): number {
    return this.script.length - this.happened;
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

export interface FakeServer {
  restUrl: string;
  wsUrl: string;
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

/**
 * Starts HTTP and websocket on one port of 127.0.0.1. `onSocket` gets every accepted websocket
 * with the path it asked for. HTTP responses are JSON unless the handler says otherwise.
 */
export async function startFakeServer(
  onHttp: HttpHandler,
  onSocket: (ws: WebSocket, path: string) => void,
): Promise<FakeServer> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let answer: ReturnType<HttpHandler>;
    try {
      answer = onHttp(req, url);
    } catch (err) {
      answer = { status: 500, body: JSON.stringify({ error: String(err) }) };
    }
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(answer.body);
  });
  const wss = new WebSocketServer({ server });
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
    restUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    sockets,
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
