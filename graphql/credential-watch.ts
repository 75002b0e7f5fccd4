/**
 * Open graphql-ws sockets follow their credential. A socket is checked once, at connection_init;
 * after that, every change that can end or narrow a credential (a revoked API key, a disabled
 * user, a password reset, a role change) is announced by the database itself when it commits,
 * whoever made it: this gateway or another replica, the `tickmesh users` command, psql
 * (channel `tickmesh_credentials`, migrations/1732700000007). The watch listens on a connection
 * of its own and re-checks the sockets the change names: a credential that no longer works
 * closes its sockets with 4401, one whose role changed with 4403 (the client reconnects and is
 * checked under its new role). Notices sent while the listening connection is down are lost, so
 * every reconnect re-checks every socket.
 */
import pg from 'pg';
import type WebSocket from 'ws';
import type { Logger } from '../core/log.ts';
import { retryForever } from '../core/retry.ts';
import { WS_FORBIDDEN, WS_UNAUTHORIZED } from './auth.ts';
import type { Caller, Callers } from './callers.ts';

export const CREDENTIALS_CHANNEL = 'tickmesh_credentials';
/** The listening connection's application_name (what an operator sees in pg_stat_activity). */
export const WATCH_APPLICATION = 'tickmesh-credential-watch';

interface Watched {
  socket: WebSocket;
  /** The connection_init value, checked again on every change. */
  authorization: unknown;
  caller: Caller;
}

/** Which sockets a notice names: `user:<name>` (their tokens and keys) or `apikey:<id>`. */
export function affectedBy(notice: string): ((caller: Caller) => boolean) | null {
  const m = /^(user|apikey):(.+)$/.exec(notice);
  if (!m) return null;
  const [, kind, name] = m;
  return kind === 'user' ? (c) => c.username === name : (c) => c.actor === `apikey:${name}`;
}

export class CredentialWatch {
  private readonly watched = new Set<Watched>();
  private readonly stopping = new AbortController();
  private client: pg.Client | null = null;

  constructor(
    /** Where to connect: the options of the gateway's pool. */
    private readonly connection: pg.ClientConfig,
    private readonly callers: Callers,
    private readonly log: Logger,
  ) {}

  /** Resolves once listening, so no change after it is missed. */
  async start(): Promise<void> {
    await retryForever(200, 5000).execute(() => this.listen(), this.stopping.signal);
  }

  /** Follows the socket's credential until the socket closes. */
  add(socket: WebSocket, authorization: unknown, caller: Caller): void {
    const entry = { socket, authorization, caller };
    this.watched.add(entry);
    socket.once('close', () => this.watched.delete(entry));
  }

  /** How many sockets are followed (for tests and metrics). */
  get size(): number {
    return this.watched.size;
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await this.client?.end().catch(() => {});
    this.client = null;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ ...this.connection, application_name: WATCH_APPLICATION });
    client.on('error', (err) => this.log.warn({ err }, 'credential watch: database connection failed'));
    try {
      await client.connect();
      await client.query(`LISTEN ${CREDENTIALS_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => {});
      throw e;
    }
    client.on('notification', (n) => {
      const match = affectedBy(n.payload ?? '');
      if (match) void this.recheck(match);
    });
    client.once('end', () => {
      if (this.stopping.signal.aborted) return;
      this.client = null;
      void this.reconnect();
    });
    this.client = client;
  }

  private async reconnect(): Promise<void> {
    try {
      await this.start();
    } catch {
      return; // stopped while reconnecting
    }
    this.log.info('credential watch: listening again; re-checking every open socket');
    await this.recheck(() => true);
  }

  private async recheck(match: (caller: Caller) => boolean): Promise<void> {
    for (const w of [...this.watched].filter((e) => match(e.caller))) {
      try {
        const now = await this.callers.fromAuthorization(w.authorization);
        if (!now) w.socket.close(WS_UNAUTHORIZED, 'credential revoked');
        else if (now.role !== w.caller.role) w.socket.close(WS_FORBIDDEN, 'role changed: reconnect');
      } catch (err) {
        // The database is unreachable: the socket keeps its last good check until the next notice.
        this.log.warn({ err, actor: w.caller.actor }, 'credential watch: could not re-check a socket');
      }
    }
  }
}
