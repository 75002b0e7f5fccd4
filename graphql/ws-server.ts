/**
 * Our graphql-ws server (the graphql-transport-ws protocol, node_modules/graphql-ws/PROTOCOL.md)
 * on the `ws` package, attached to the HTTP server's 'upgrade' event for one path; mercurius
 * serves HTTP only. What it enforces, with the protocol's close codes:
 * - 4400 a message that is not a JSON object of a known type, a subscribe without a string
 *   `query` or id, a binary frame; 1009 a message above `maxMessageBytes`;
 * - 4401 no valid credential at connection_init, or a subscribe before connection_ack; the
 *   socket follows its credential (token expiry, CredentialWatch: 4401 revoked, 4403 role
 *   changed);
 * - 4406 without the graphql-transport-ws subprotocol; 4408 no connection_init within
 *   `initTimeoutMs`; 4409 a subscribe whose id is in use; 4429 a second connection_init, or
 *   more than `maxSocketsPerPrincipal` open sockets of one user/API key;
 * - 1008 a client whose unsent bytes stayed above `maxBufferedBytes` for `slowGraceMs`
 *   (counted in tickmesh_graphql_ws_closed_total{reason="slow"}).
 * A subscribe that breaks a limit but not the protocol gets an `error` message and the socket
 * stays: parse/validation errors (GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED), a query or
 * mutation (TM_ERR_WS_OPERATION: they go over HTTP, with its audit and limits), the
 * role table (TM_ERR_FORBIDDEN), fields/depth or subscriptions per socket (TM_ERR_LIMIT), a
 * rate limit (TM_ERR_RATE_LIMITED). Every ended subscription releases its fan-out sink at once.
 */
import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { GraphQLSchema } from 'graphql';
import WebSocket, { WebSocketServer } from 'ws';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { LimitExceededError, RateLimitedError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { metrics } from '../core/metrics.ts';
import { closeWhenExpired, operationsOf, refusal, WS_UNAUTHORIZED } from './auth.ts';
import type { Caller, Callers } from './callers.ts';
import type { CredentialWatch } from './credential-watch.ts';
import type { Fanout, Joined } from './fanout.ts';
import { principalOf } from './rate-limits.ts';
import { checkDocument, executionKey, type PayloadError, payloadErrorOf } from './ws-documents.ts';
import { Flusher, Outbound } from './ws-outbound.ts';

export const WS_PROTOCOL = 'graphql-transport-ws';
export const WS_CLOSE = {
  badRequest: 4400,
  unauthorized: WS_UNAUTHORIZED,
  subprotocol: 4406,
  initTimeout: 4408,
  duplicateId: 4409,
  tooMany: 4429,
  slow: 1008,
} as const;

export type WsConfig = Config['gateway']['ws'];

export interface WsServerOptions {
  cfg: WsConfig;
  schema: GraphQLSchema;
  fanout: Fanout;
  callers: Callers;
  watch: CredentialWatch;
  clock: Clock;
  log: Logger;
  /** Visibility scope of a root field for a caller (e.g. alerts: the owner); '' when shared by all. */
  scopeOf?: (field: string, caller: Caller) => string;
  /** Why to refuse the upgrade (e.g. the Host/Origin policy: 421, 403); null to accept. */
  checkUpgrade?: (req: IncomingMessage) => UpgradeRefusal | null;
  /** Charges one subscribe to the principal's budget: retry-after ms when over it, else null. */
  chargeSubscribe?: (principalKey: string) => Promise<number | null>;
}

/** An upgrade refused: the HTTP status and the reason sent with it (a TmError fits). */
export interface UpgradeRefusal {
  status: number;
  message: string;
  code?: string;
}

interface Sub {
  id: string;
  idJson: string;
  /** `{"id":<id>,"type":"next","payload":` as bytes, written before each shared payload. */
  prefix: Buffer;
  joined: Joined | null;
}

interface Conn {
  ws: WebSocket;
  out: Outbound;
  address: string | null;
  initSeen: boolean;
  caller: Caller | null;
  principal: string | null;
  subs: Map<string, Sub>;
  initTimer: unknown;
}

export class GraphqlWsServer {
  private readonly wss: WebSocketServer;
  private readonly conns = new Map<WebSocket, Conn>();
  private readonly perPrincipal = new Map<string, number>();
  private readonly flusher: Flusher;
  private attached: {
    server: Server;
    listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  } | null = null;

  constructor(private readonly o: WsServerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: o.cfg.maxMessageBytes,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false),
    });
    this.flusher = new Flusher(o.cfg, (out) => {
      metrics.wsClosed.inc({ reason: 'slow' });
      this.o.log.warn({ unsent: out.unsentBytes }, 'graphql-ws: closing a client that does not read');
      out.ws.close(WS_CLOSE.slow, 'slow consumer: too many unsent bytes');
      // The close frame waits behind the unread bytes: do not wait for the handshake.
      setTimeout(() => out.ws.terminate(), 1000).unref();
    });
  }

  /** Open sockets. */
  get socketCount(): number {
    return this.conns.size;
  }

  attach(server: Server, path = '/graphql'): void {
    const listener = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== path) return refuse(socket, 404, 'no WebSocket endpoint here');
      const refused = this.o.checkUpgrade?.(req) ?? null;
      if (refused !== null) return refuse(socket, refused.status, refused.message, refused.code);
      if (this.conns.size >= this.o.cfg.maxConnections) {
        metrics.wsClosed.inc({ reason: 'max_connections' });
        return refuse(socket, 503, 'too many connections');
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
    };
    server.on('upgrade', listener);
    this.attached = { server, listener };
  }

  async close(): Promise<void> {
    if (this.attached) this.attached.server.off('upgrade', this.attached.listener);
    for (const c of this.conns.values()) c.ws.terminate();
    this.flusher.close();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const conn: Conn = {
      ws,
      out: new Outbound(ws, this.flusher),
      address: req.socket.remoteAddress ?? null,
      initSeen: false,
      caller: null,
      principal: null,
      subs: new Map(),
      initTimer: null,
    };
    this.conns.set(ws, conn);
    metrics.wsConnections.set(this.conns.size);
    ws.on('error', (err) => this.o.log.debug({ err }, 'graphql-ws socket error'));
    ws.on('close', () => this.closed(conn));
    if (ws.protocol !== WS_PROTOCOL) {
      this.shut(conn, WS_CLOSE.subprotocol, 'Subprotocol not acceptable');
      return;
    }
    conn.initTimer = this.o.clock.setTimeout(() => {
      if (!conn.initSeen) this.shut(conn, WS_CLOSE.initTimeout, 'Connection initialisation timeout');
    }, this.o.cfg.initTimeoutMs);
    ws.on('message', (data, isBinary) => this.receive(conn, data as Buffer, isBinary));
  }

  private closed(conn: Conn): void {
    if (!this.conns.delete(conn.ws)) return;
    metrics.wsConnections.set(this.conns.size);
    this.o.clock.clearTimeout(conn.initTimer as never);
    for (const sub of conn.subs.values()) sub.joined?.release();
    conn.subs.clear();
    this.flusher.release(conn.out);
    if (conn.principal !== null) {
      const n = (this.perPrincipal.get(conn.principal) ?? 1) - 1;
      if (n > 0) this.perPrincipal.set(conn.principal, n);
      else this.perPrincipal.delete(conn.principal);
    }
  }

  private shut(conn: Conn, code: number, reason: string): void {
    // Messages already received after the first violation must not count (or close) again.
    if (conn.ws.readyState !== WebSocket.OPEN && conn.ws.readyState !== WebSocket.CONNECTING) return;
    metrics.wsClosed.inc({ reason: String(code) });
    conn.ws.close(code, reason);
  }

  private receive(conn: Conn, data: Buffer, isBinary: boolean): void {
    let msg: Record<string, unknown>;
    try {
      if (isBinary) throw new Error('binary');
      const parsed: unknown = JSON.parse(data.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      msg = parsed as Record<string, unknown>;
    } catch {
      this.shut(conn, WS_CLOSE.badRequest, 'Invalid message received');
      return;
    }
    if (msg.type === 'connection_init') void this.init(conn, msg.payload);
    else if (msg.type === 'ping') conn.out.send(JSON.stringify({ type: 'pong' }));
    else if (msg.type === 'subscribe') void this.subscribe(conn, msg);
    else if (msg.type === 'complete' && typeof msg.id === 'string') this.complete(conn, msg.id);
    else if (msg.type !== 'pong') this.shut(conn, WS_CLOSE.badRequest, 'Invalid message received');
  }

  private async init(conn: Conn, payload: unknown): Promise<void> {
    if (conn.initSeen) return this.shut(conn, WS_CLOSE.tooMany, 'Too many initialisation requests');
    conn.initSeen = true;
    this.o.clock.clearTimeout(conn.initTimer as never);
    const authorization =
      typeof payload === 'object' && payload !== null
        ? (payload as { authorization?: unknown }).authorization
        : undefined;
    let caller: Caller | null;
    try {
      caller = await this.o.callers.fromAuthorization(authorization);
    } catch (err) {
      this.o.log.warn({ err }, 'graphql-ws: could not check a credential');
      caller = null;
    }
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    if (!caller) return this.shut(conn, WS_CLOSE.unauthorized, 'Unauthorized');
    // The same principal as HTTP requests' budgets (user:<name>, apikey:<id>).
    const principal = principalOf({ caller, address: conn.address });
    const open = this.perPrincipal.get(principal) ?? 0;
    if (open >= this.o.cfg.maxSocketsPerPrincipal)
      return this.shut(
        conn,
        WS_CLOSE.tooMany,
        `too many sockets for this principal (max ${this.o.cfg.maxSocketsPerPrincipal})`,
      );
    this.perPrincipal.set(principal, open + 1);
    conn.principal = principal;
    conn.caller = caller;
    if (caller.expiresAt !== null) closeWhenExpired(conn.ws, caller.expiresAt, this.o.clock);
    this.o.watch.add(conn.ws, authorization, caller);
    conn.out.send(JSON.stringify({ type: 'connection_ack' }));
  }

  private async subscribe(conn: Conn, msg: Record<string, unknown>): Promise<void> {
    const { id } = msg;
    const payload = msg.payload as Record<string, unknown> | undefined;
    if (
      typeof id !== 'string' ||
      id.length === 0 ||
      id.length > 256 ||
      typeof payload !== 'object' ||
      !payload
    )
      return this.shut(conn, WS_CLOSE.badRequest, 'Invalid message received');
    const { query, operationName, variables } = payload;
    if (
      typeof query !== 'string' ||
      (operationName !== undefined && operationName !== null && typeof operationName !== 'string') ||
      (variables !== undefined &&
        variables !== null &&
        (typeof variables !== 'object' || Array.isArray(variables)))
    )
      return this.shut(conn, WS_CLOSE.badRequest, 'Invalid message received');
    const caller = conn.caller;
    if (!caller) return this.shut(conn, WS_CLOSE.unauthorized, 'Unauthorized');
    if (conn.subs.has(id))
      return this.shut(conn, WS_CLOSE.duplicateId, `Subscriber for ${id} already exists`);
    const idJson = JSON.stringify(id);
    const sub: Sub = {
      id,
      idJson,
      prefix: Buffer.from(`{"id":${idJson},"type":"next","payload":`),
      joined: null,
    };
    const fail = (errors: PayloadError[]) => {
      if (conn.subs.get(id) !== sub) return;
      conn.subs.delete(id);
      conn.out.send(`{"id":${sub.idJson},"type":"error","payload":${JSON.stringify(errors)}}`, id);
    };
    if (conn.subs.size >= this.o.cfg.maxSubscriptionsPerSocket) {
      conn.out.send(
        `{"id":${sub.idJson},"type":"error","payload":${JSON.stringify([
          payloadErrorOf(
            new LimitExceededError('subscriptions on one socket', this.o.cfg.maxSubscriptionsPerSocket),
          ),
        ])}}`,
        id,
      );
      return;
    }
    conn.subs.set(id, sub);
    const op = operationName ?? undefined;
    const vars = (variables ?? undefined) as Record<string, unknown> | undefined;
    const checked = checkDocument(this.o.schema, query, op, this.o.cfg, vars);
    if (Array.isArray(checked)) return fail(checked);
    const refused = refusal(caller, operationsOf(checked.document));
    if (refused) return fail([payloadErrorOf(refused)]);
    if (this.o.chargeSubscribe) {
      const retryAfterMs = await this.o.chargeSubscribe(conn.principal!).catch(() => null);
      if (retryAfterMs !== null) {
        const e = new RateLimitedError('subscribe', retryAfterMs);
        return fail([{ message: e.message, extensions: { code: e.code, retryAfterMs } }]);
      }
      if (conn.subs.get(id) !== sub) return;
    }
    const scope = checked.rootFields.map((f) => this.o.scopeOf?.(f, caller) ?? '').join(',');
    const joined = await this.o.fanout.join(
      {
        key: executionKey(query, op, vars, scope),
        document: checked.document,
        operationName: op,
        variables: vars,
        context: { caller, address: conn.address },
      },
      {
        next: (payload, conflatable) => conn.out.next(id, sub.prefix, payload, conflatable),
        error: (errors) => {
          sub.joined?.release();
          fail(errors);
        },
        complete: () => {
          sub.joined?.release();
          if (conn.subs.get(id) !== sub) return;
          conn.subs.delete(id);
          conn.out.send(`{"id":${sub.idJson},"type":"complete"}`, id);
        },
      },
    );
    if (Array.isArray(joined)) return fail(joined);
    sub.joined = joined;
    // Completed by the client, or the socket closed, while the source was being set up.
    if (conn.subs.get(id) !== sub || !this.conns.has(conn.ws)) joined.release();
  }

  private complete(conn: Conn, id: string): void {
    const sub = conn.subs.get(id);
    if (!sub) return;
    conn.subs.delete(id);
    conn.out.forget(id);
    sub.joined?.release();
  }
}

/** Answers an upgrade with an HTTP error (a GraphQL error body, with the code when there is one). */
function refuse(socket: Duplex, status: number, reason: string, code?: string): void {
  const body = JSON.stringify({ errors: [{ message: reason, ...(code ? { extensions: { code } } : {}) }] });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
