/**
 * The websocket loop: ccxt.pro `watchTradesForSymbols` for every symbol, reading what each
 * wake-up left in ccxt's per-symbol caches, reconnecting (on the Clock's backoff) after a drop,
 * a stale stream or a proactive refresh, and starting repairs on every new connection.
 *
 * ccxt behaviour this relies on (4.5.84, see the fakes in test/fakes for the wire formats):
 * - a dropped socket rejects the pending watch with NetworkError ("connection closed by remote
 *   server, closing code 1006"); the next watch call dials again (ccxt's own reconnect delay is
 *   switched off, ours runs on the Clock); a dial that fails before any socket opened (refused,
 *   or refused by ccxt itself, e.g. NotSupported) is a connection failure too;
 * - an unreadable frame (invalid JSON, NaN price, wrong shape) makes ccxt reject every pending
 *   watch on that socket with a plain TypeError/SyntaxError/ArgumentsRequired while the socket
 *   stays open; frames ccxt cannot JSON.parse only reach `exchange.log`;
 * - trades land in `exchange.trades[symbol]` (a bounded ArrayCache): racing several symbols in
 *   one watch call can resolve one symbol and leave another's new trades unannounced, so every
 *   wake-up reads all symbols' caches.
 */
import ccxt from 'ccxt';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { TimerHandle } from '../../../core/clock.ts';
import type { FeedContext, SymbolRuntime } from './feed-context.ts';
import type { Repairs } from './repairs.ts';
import type { RestLane } from './rest-lane.ts';
import { buffersLive } from './symbol-phase.ts';
import { inExchangeOrder } from './symbol-track.ts';
import type { CcxtTrade, CcxtWsClient } from './types.ts';

type Wake =
  | { kind: 'data' }
  | { kind: 'error'; err: unknown }
  | { kind: 'interrupt'; reason: 'stale' | 'refresh' }
  | { kind: 'stop' };

/** Live trades buffered per symbol while it repairs; beyond this REST brings the rest. */
const MAX_BUFFER = 100_000;
/** Consecutive unreadable frames before the socket is replaced. */
const FRAME_ERRORS_BEFORE_REDIAL = 3;

export class StreamLoop {
  private wake: ((w: Wake) => void) | undefined;
  private reconnectPending: 'stale' | 'refresh' | undefined;
  private refreshTimer: TimerHandle | undefined;
  private readonly dialBackoff: ExponentialBackoff<unknown>;

  constructor(
    private readonly ctx: FeedContext,
    private readonly rest: RestLane,
    private readonly repairs: Repairs,
  ) {
    this.dialBackoff = new ExponentialBackoff(ctx.s.backoff);
    ctx.signal.addEventListener('abort', () => this.wake?.({ kind: 'stop' }), { once: true });
    // ccxt's user hook for "socket open": a new connection needs a gap repair.
    ctx.ex.onConnected = () => queueMicrotask(() => this.onConnected());
  }

  async run(symbols: string[]): Promise<void> {
    const { ctx, rest } = this;
    let failures = 0; // consecutive failed watches without data in between
    let backoff: IBackoff<unknown> | undefined;
    let mustDial = true;
    while (!ctx.stopped) {
      if (mustDial) {
        if (!(await rest.gate())) break;
        this.reconnectPending = undefined; // the dial about to happen is the reconnect
      }
      const outcome = await this.nextWake(symbols);
      // A dial holds the half-open probe: onConnected or a failure below gives the verdict.
      if (mustDial) rest.circuit.release();
      if (outcome.kind === 'stop') break;
      if (outcome.kind === 'data') {
        mustDial = false;
        failures = 0;
        backoff = undefined;
        this.readCaches();
        continue;
      }
      // Whatever arrived around the error is good; good data also ends a failure streak.
      if (this.readCaches() > 0) failures = 0;
      if (outcome.kind === 'interrupt') {
        this.reconnectPending = undefined;
        if (outcome.reason === 'refresh') ctx.counters.refreshes++;
        else failures++; // a dead stream: successive ones back off
        ctx.log.info({ reason: outcome.reason }, 'reconnecting');
        await this.closeSockets();
      } else if (outcome.err instanceof ccxt.NetworkError || !ctx.connected) {
        // The socket dropped, or no socket ever opened (ccxt refused or failed the dial).
        ctx.noteError(outcome.err, 'websocket');
        rest.circuit.failure();
        failures++;
      } else {
        // The socket is still open: ccxt rejected the watch over a frame it could not read.
        ctx.counters.frameErrors++;
        ctx.noteError(outcome.err, 'websocket frame');
        failures++;
        this.repairs.repairAll('frame');
        if (failures < FRAME_ERRORS_BEFORE_REDIAL) continue;
        await this.closeSockets(); // keeps failing: start over on a fresh connection
      }
      if (ctx.connected) ctx.setConnection('reconnecting');
      ctx.connected = false;
      ctx.counters.reconnects++;
      mustDial = true;
      let delay = 0; // the first reconnect after a healthy stretch is immediate
      if (failures > 1) {
        backoff = backoff ? backoff.next(undefined) : this.dialBackoff.next();
        delay = backoff.duration;
      }
      await ctx.sleep(delay);
    }
  }

  /** Clears the refresh timer and closes every socket. */
  async stop(): Promise<void> {
    if (this.refreshTimer) this.ctx.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    await this.closeSockets().catch(() => {});
  }

  requestReconnect(reason: 'stale' | 'refresh'): void {
    if (this.reconnectPending || this.ctx.stopped) return;
    this.reconnectPending = reason;
    this.wake?.({ kind: 'interrupt', reason });
  }

  /**
   * One watch call, or an earlier wake-up by a reconnect request or stop. (A fresh promise per
   * call: racing long-lived promises would add a reaction to them on every trade.)
   */
  private nextWake(symbols: string[]): Promise<Wake> {
    if (this.ctx.stopped) return Promise.resolve({ kind: 'stop' });
    if (this.reconnectPending) return Promise.resolve({ kind: 'interrupt', reason: this.reconnectPending });
    return new Promise<Wake>((resolve) => {
      this.wake = resolve;
      this.ctx.ex.watchTradesForSymbols!(symbols).then(
        () => resolve({ kind: 'data' }),
        (err: unknown) => resolve({ kind: 'error', err }),
      );
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** ccxt opened a socket: restart stale clocks, schedule the refresh, repair every symbol. */
  private onConnected(): void {
    const ctx = this.ctx;
    if (ctx.stopped) return;
    ctx.connected = true;
    ctx.setConnection('connected');
    this.rest.circuit.success();
    const now = ctx.clock.now();
    for (const rt of ctx.runtimes.values()) {
      rt.watchSince = now;
      ctx.applyPhase(rt, { type: 'heard' });
    }
    if (this.refreshTimer) ctx.clock.clearTimeout(this.refreshTimer);
    if (ctx.s.refreshAfterMs > 0) {
      this.refreshTimer = ctx.clock.setTimeout(() => this.requestReconnect('refresh'), ctx.s.refreshAfterMs);
    }
    for (const rt of ctx.runtimes.values()) {
      // Without a watermark there is nothing to repair from: the stream is the start.
      if (rt.track.lastTs !== undefined) this.repairs.repair(rt, 'connect');
    }
  }

  /**
   * Closes every ccxt socket and waits until ccxt has forgotten it. terminate() rather than a
   * close handshake: the socket may be dead. Waiting matters: ccxt deletes a closed client by
   * url, so a close landing after the next dial would orphan the new connection.
   */
  private async closeSockets(): Promise<void> {
    const ex = this.ctx.ex;
    const clients = Object.values(ex.clients ?? {}).filter((c): c is CcxtWsClient => c !== undefined);
    await Promise.all(
      clients.map(async (client) => {
        const alreadyClosed = client.connection?.readyState === 3; // no 'close' event would come
        const closed = client.close();
        client.connection?.terminate?.();
        if (!alreadyClosed) await closed;
        if (ex.clients?.[client.url] === client) delete ex.clients[client.url];
      }),
    );
  }

  /** Takes every not-yet-read trade out of ccxt's per-symbol caches; returns how many were valid. */
  private readCaches(): number {
    let valid = 0;
    for (const rt of this.ctx.runtimes.values()) {
      const cache = this.ctx.ex.trades?.[rt.symbol];
      if (!cache || cache.length === 0) continue;
      let from = cache.length - 1;
      while (from >= 0 && cache[from] !== rt.lastCacheItem) from--;
      if (
        from < 0 &&
        rt.lastCacheItem !== undefined &&
        cache.maxSize !== undefined &&
        cache.length >= cache.maxSize
      ) {
        // Our last read entry was pushed out: more trades came than the cache holds.
        this.ctx.log.warn({ symbol: rt.symbol }, 'ccxt trade cache overflowed; repairing');
        this.repairs.repair(rt, 'overflow');
      }
      const fresh: CcxtTrade[] = []; // (slice would construct another ArrayCache)
      for (let i = from + 1; i < cache.length; i++) fresh.push(cache[i]!);
      rt.lastCacheItem = cache[cache.length - 1];
      if (fresh.length > 0) valid += this.onLive(rt, fresh);
    }
    return valid;
  }

  /** Hands on (or buffers, while repairing or unproven) live trades; returns how many were valid. */
  private onLive(rt: SymbolRuntime, raw: CcxtTrade[]): number {
    const ctx = this.ctx;
    const trades = inExchangeOrder(ctx.normaliseAll(raw));
    if (trades.length === 0) return 0;
    rt.lastLiveAt = ctx.clock.now();
    rt.quietLevel = 0;
    const buffering = buffersLive(rt.phase);
    const startsVerify = ctx.applyPhase(rt, { type: 'live' });
    if (!buffering) {
      ctx.handOn(rt, trades, 'live');
      return trades.length;
    }
    for (const trade of trades) {
      if (rt.buffer.length < MAX_BUFFER) rt.buffer.push({ trade, seq: ctx.nextSeq() });
      else this.repairs.repair(rt, 'overflow'); // REST will bring what the buffer could not hold
    }
    if (startsVerify) this.repairs.start(rt);
    return trades.length;
  }
}
