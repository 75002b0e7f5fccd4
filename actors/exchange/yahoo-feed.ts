/**
 * Polls Yahoo's 1m chart for a set of symbols and hands each completed bar to a sink exactly
 * once. NATS-agnostic: the exchange actor supplies the sink.
 *
 * - Only while a symbol's market is open (core/market-hours), plus one poll after the close for
 *   the final bar. A closed market costs no requests: the symbol's loop sleeps until nextOpen.
 *   Polls are phase-aligned: `settleMs` past each multiple of `pollIntervalMs`.
 * - Requests are `chart(symbol, { interval: '1m', period1, period2, includePrePost: false })`:
 *   regular-session bars only, period1 = the minute after the last emitted bar (at most 7 days
 *   back: Yahoo keeps 1m data for 30 days and serves 8 days per request). Minutes older than
 *   that are out of reach: after a longer outage the sink hears of the lost window as a gap,
 *   once, after the bars that follow it.
 * - Yahoo's last 1m row is the forming minute (stamped with the current second); a bar is
 *   emitted only once its minute has ended (+ `settleMs` for Yahoo's own processing lag). Rows
 *   with a null price are skipped. Each symbol re-fetches from its last emitted bar, so a failed
 *   poll loses nothing: the next successful one returns the missed minutes.
 * - Delayed markets: Yahoo serves some exchanges late (Borsa Istanbul by 15 minutes), so there
 *   the forming minute is the one `delayMs` ago. A bar counts as complete only once its minute
 *   has ended `delayMs` + `settleMs` ago, and the after-close poll waits as long.
 * - Errors back off with cockatiel's decorrelated-jitter exponential backoff; a 429's
 *   Retry-After (core/retry-after.ts) is a lower bound on the wait. Each symbol has a circuit
 *   breaker on the injected Clock (core/circuit-breaker.ts, shared with the ccxt feed): after
 *   `breaker.failures` consecutive failures it opens, and after `breaker.halfOpenAfterMs` (or
 *   the longer wait asked for) one trial request decides. Only the backoff arithmetic is
 *   cockatiel's: its own policies time with setTimeout/Date.now.
 * - Options are the exchanges file's yahoo entry as its schema parsed it (one set of defaults).
 */
import { ExponentialBackoff, type IBackoff, type IBackoffFactory } from 'cockatiel';
import type YahooFinance from 'yahoo-finance2';
import { CircuitBreaker, type CircuitState } from '../../core/circuit-breaker.ts';
import { type Clock, sleep } from '../../core/clock.ts';
import { AlreadyStartedError } from '../../core/errors.ts';
import type { YahooExchangeOptions } from '../../core/exchanges-config.ts';
import type { Logger } from '../../core/log.ts';
import { type Calendar, type ClosedReason, calendarForSymbol, marketState } from '../../core/market-hours.ts';
import { MAX_TRADES_PER_BATCH, type SourceBar } from '../../core/protocol/index.ts';
import { parseRetryAfter } from '../../core/retry-after.ts';

const MINUTE = 60_000;
/** Yahoo serves 1m data for the last 30 days, at most 8 days per request; stay inside both. */
const MAX_LOOKBACK_MS = 7 * 86_400_000;

/** How far behind real time Yahoo's free data for a market is (its `exchangeDataDelayedBy`). */
export const YAHOO_DATA_DELAY_MS: Readonly<Record<Calendar, number>> = Object.freeze({
  NYSE: 0,
  NASDAQ: 0,
  BIST: 15 * MINUTE,
  '24x7': 0,
});
const FINAL_POLL_ATTEMPTS = 5;

export type { SourceBar };

/**
 * Receives each symbol's completed bars once, in time order, at most MAX_TRADES_PER_BATCH per
 * call (the exchange actor publishes them as a SourceBarBatch).
 */
export interface SourceBarSink {
  onBars(symbol: string, bars: SourceBar[]): Promise<void>;
  /**
   * Minutes [from, to) after the last emitted bar that Yahoo no longer serves (an outage longer
   * than the look-back): called after the bars of the poll that found it; a throw retries it.
   */
  onGap?(symbol: string, gap: { from: number; to: number; reason: string }): Promise<void>;
}

export type YahooClient = InstanceType<typeof YahooFinance>;

export interface YahooFeedOptions {
  /** The exchange's entry, as the exchanges-file schema parsed it (`parseStoredOptions`). */
  exchange: YahooExchangeOptions;
  symbols: readonly string[];
  clock: Clock;
  log: Logger;
  /** A yahoo-finance2 instance (tests pass one whose fetch goes to a fake). */
  yahoo: YahooClient;
  /** One calendar for every symbol, or a choice per symbol; default calendarForSymbol. */
  calendar?: Calendar | ((symbol: string) => Calendar);
  /** Open time of the first bar to emit (all symbols, or per symbol); default: the last 24 h. */
  since?: number | Readonly<Record<string, number>>;
}

/** A minute counts as complete this long after it ends (Yahoo finishes a bar late). */
const SETTLE_MS = 2000;

export type FeedState = 'starting' | 'polling' | 'backoff' | 'market-closed' | 'stopped';

export interface SymbolFeedHealth {
  symbol: string;
  calendar: Calendar;
  /** How far behind real time Yahoo serves this symbol (bars count as complete this much later). */
  delayMs: number;
  state: FeedState;
  circuit: CircuitState;
  /** Why the market is closed, while `state` is market-closed. */
  closedReason: ClosedReason | null;
  nextOpen: number | null;
  closesAt: number | null;
  lastPollAt: number | null;
  /** When the next request is due after a failure. */
  retryAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Open time of the last emitted bar. */
  lastBarT: number | null;
  requests: number;
  bars: number;
  errors: number;
  consecutiveFailures: number;
  rateLimited: number;
  /** 2xx answers that yahoo-finance2 could not parse or validate. */
  malformed: number;
  /** Bars whose high/low Yahoo gave inside open/close, widened to contain them (the protocol's
   * SourceBar check demands low ≤ open, close ≤ high). */
  repaired: number;
  /** Windows reported as lost (out of Yahoo's reach when they were polled for). */
  gaps: number;
}

interface SymbolRun {
  health: SymbolFeedHealth;
  nextBarT: number;
  breaker: CircuitBreaker;
  backoff: IBackoff<unknown> | undefined;
  finalPollDue: boolean;
  finalAttempts: number;
  sessionClose: number | null;
  /** A lost window [from, to) not yet reported to the sink. */
  lost: { from: number; to: number } | null;
}

interface Capture {
  status: number;
  retryAfter: string | null;
}

export class YahooFeed {
  private readonly runs = new Map<string, SymbolRun>();
  private started = false;
  private readonly settleMs = SETTLE_MS;
  private readonly pollIntervalMs: number;
  private readonly backoffFactory: IBackoffFactory<unknown>;

  constructor(
    private readonly opts: YahooFeedOptions,
    private readonly sink: SourceBarSink,
  ) {
    const { exchange } = opts;
    this.pollIntervalMs = exchange.pollIntervalMs;
    this.backoffFactory = new ExponentialBackoff({
      initialDelay: exchange.backoff.initialMs,
      maxDelay: exchange.backoff.maxMs,
    });
    const now = opts.clock.now();
    for (const symbol of new Set(opts.symbols)) {
      const calendar =
        typeof opts.calendar === 'function'
          ? opts.calendar(symbol)
          : (opts.calendar ?? calendarForSymbol(symbol));
      const since = typeof opts.since === 'number' ? opts.since : opts.since?.[symbol];
      this.runs.set(symbol, {
        health: {
          symbol,
          calendar,
          delayMs: exchange.dataDelayMs?.[calendar] ?? YAHOO_DATA_DELAY_MS[calendar],
          state: 'starting',
          circuit: 'closed',
          closedReason: null,
          nextOpen: null,
          closesAt: null,
          lastPollAt: null,
          retryAt: null,
          lastError: null,
          lastErrorAt: null,
          lastBarT: null,
          requests: 0,
          bars: 0,
          errors: 0,
          consecutiveFailures: 0,
          rateLimited: 0,
          malformed: 0,
          repaired: 0,
          gaps: 0,
        },
        nextBarT: Math.floor((since ?? now - 86_400_000) / MINUTE) * MINUTE,
        breaker: new CircuitBreaker(opts.clock, exchange.breaker),
        backoff: undefined,
        finalPollDue: false,
        finalAttempts: 0,
        sessionClose: null,
        lost: null,
      });
    }
  }

  /** Runs until the signal aborts; resolves once every symbol's loop has stopped. */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) throw new AlreadyStartedError('YahooFeed');
    this.started = true;
    await Promise.all([...this.runs.values()].map((run) => this.runSymbol(run, signal)));
  }

  health(): Record<string, SymbolFeedHealth> {
    return Object.fromEntries(
      [...this.runs].map(([sym, run]) => [sym, { ...run.health, circuit: run.breaker.state }]),
    );
  }

  private async runSymbol(run: SymbolRun, signal: AbortSignal): Promise<void> {
    const { clock } = this.opts;
    const h = run.health;
    while (!signal.aborted) {
      const now = clock.now();
      const openUntil = run.breaker.openUntil;
      if (openUntil !== null) {
        await this.sleep(openUntil - now, signal);
        continue;
      }
      if (h.retryAt !== null && now < h.retryAt) {
        await this.sleep(h.retryAt - now, signal);
        continue;
      }
      const market = marketState(h.calendar, now);
      if (market.open) {
        run.finalPollDue = true;
        run.finalAttempts = 0;
        run.sessionClose = market.closesAt ?? null;
        h.closesAt = market.closesAt ?? null;
        h.nextOpen = null;
        h.closedReason = null;
        if (await this.poll(run, now)) await this.sleep(this.untilNextPoll(clock.now()), signal);
        continue;
      }
      if (run.finalPollDue && run.finalAttempts < FINAL_POLL_ATTEMPTS) {
        // One more request after the close, once the last minute has completed.
        const due = (run.sessionClose ?? now) + this.settleMs + h.delayMs;
        if (now < due) {
          await this.sleep(due - now, signal);
          continue;
        }
        run.finalAttempts++;
        if (await this.poll(run, now)) run.finalPollDue = false;
        continue;
      }
      run.finalPollDue = false;
      h.state = 'market-closed';
      h.closedReason = market.reason ?? null;
      h.nextOpen = market.nextOpen;
      h.closesAt = null;
      h.retryAt = null;
      // Capped so that a timer never overflows (setTimeout's 24.8-day limit) and the calendar is
      // re-read at least daily.
      await this.sleep(Math.min(market.nextOpen - now, 86_400_000), signal);
    }
    h.state = 'stopped';
  }

  /**
   * Polls run on a fixed phase: `settleMs` after multiples of the interval (epoch-aligned), so
   * with a 60 s interval each minute's bar is fetched two seconds after it completes instead
   * of up to a minute later.
   */
  private untilNextPoll(now: number): number {
    const every = this.pollIntervalMs;
    return Math.floor((now - this.settleMs) / every) * every + every + this.settleMs - now;
  }

  /** One chart request; true when it succeeded and its bars (if any) reached the sink. */
  private async poll(run: SymbolRun, now: number): Promise<boolean> {
    const h = run.health;
    const to = Math.floor(now / MINUTE) * MINUTE + MINUTE;
    const oldest = Math.floor((now - MAX_LOOKBACK_MS) / MINUTE) * MINUTE;
    if (run.nextBarT < oldest) run.lost = { from: run.lost?.from ?? run.nextBarT, to: oldest };
    const from = Math.min(Math.max(run.nextBarT, oldest), to - MINUTE);
    const capture: Capture = { status: 0, retryAfter: null };
    h.requests++;
    h.lastPollAt = now;
    let bars: SourceBar[];
    try {
      const result = await this.opts.yahoo.chart(
        h.symbol,
        { interval: '1m', period1: new Date(from), period2: new Date(to), includePrePost: false },
        { fetch: this.capturingFetch(capture) },
      );
      bars = this.completedBars(run, result.quotes, now);
    } catch (e) {
      const status = capture.status;
      let retryAfterMs: number | null = null;
      if (status === 429) {
        h.rateLimited++;
        retryAfterMs = parseRetryAfter(capture.retryAfter, this.opts.clock.now());
      } else if (status >= 200 && status < 300) {
        h.malformed++;
      }
      const message = `${status ? `HTTP ${status}: ` : ''}${(e as Error).message ?? String(e)}`;
      this.failed(run, message.slice(0, 300), retryAfterMs, true);
      return false;
    }
    // A week of a 24x7 symbol is more than one message may carry.
    for (let i = 0; i < bars.length; i += MAX_TRADES_PER_BATCH) {
      const chunk = bars.slice(i, i + MAX_TRADES_PER_BATCH);
      try {
        await this.sink.onBars(h.symbol, chunk);
      } catch (e) {
        // Not Yahoo's fault: retry later (the same bars come again) without touching the circuit.
        this.failed(run, `sink: ${(e as Error).message}`, null, false);
        return false;
      }
      h.lastBarT = chunk.at(-1)!.t;
      h.bars += chunk.length;
      run.nextBarT = h.lastBarT + MINUTE;
    }
    if (run.lost !== null) {
      const gap = { ...run.lost, reason: 'older than the 7 days of 1m history Yahoo serves' };
      try {
        await this.sink.onGap?.(h.symbol, gap);
      } catch (e) {
        this.failed(run, `sink: ${(e as Error).message}`, null, false);
        return false;
      }
      run.lost = null;
      run.nextBarT = Math.max(run.nextBarT, gap.to);
      h.gaps++;
      this.opts.log.warn({ symbol: h.symbol, gap }, 'yahoo: minutes out of reach, reported as a gap');
    }
    if (h.consecutiveFailures > 0)
      this.opts.log.info({ symbol: h.symbol, failures: h.consecutiveFailures }, 'yahoo poll recovered');
    run.breaker.success();
    run.backoff = undefined;
    h.consecutiveFailures = 0;
    h.retryAt = null;
    h.state = 'polling';
    return true;
  }

  private failed(
    run: SymbolRun,
    message: string,
    retryAfterMs: number | null,
    countsForCircuit: boolean,
  ): void {
    const h = run.health;
    const now = this.opts.clock.now();
    h.errors++;
    h.consecutiveFailures++;
    h.lastError = message;
    h.lastErrorAt = now;
    run.backoff = (run.backoff ?? this.backoffFactory).next(undefined);
    let delay = run.backoff.duration;
    if (retryAfterMs !== null) delay = Math.max(delay, retryAfterMs);
    // A failed trial in half-open reopens at once; the circuit stays open at least `delay`.
    if (countsForCircuit && run.breaker.failure(delay)) delay = run.breaker.openUntil! - now;
    h.retryAt = now + delay;
    h.state = 'backoff';
    this.opts.log.warn(
      {
        symbol: h.symbol,
        error: message,
        retryInMs: delay,
        circuit: run.breaker.state,
        failures: h.consecutiveFailures,
      },
      'yahoo poll failed',
    );
  }

  /** Completed, non-null minutes after the last emitted bar, in time order, one per minute. */
  private completedBars(
    run: SymbolRun,
    quotes: readonly {
      date: Date;
      open: number | null;
      high: number | null;
      low: number | null;
      close: number | null;
      volume: number | null;
    }[],
    now: number,
  ): SourceBar[] {
    const byMinute = new Map<number, SourceBar>();
    for (const q of quotes) {
      const ts = q.date.getTime();
      const t = Math.floor(ts / MINUTE) * MINUTE;
      if (t < run.nextBarT || t + MINUTE + this.settleMs + run.health.delayMs > now) continue;
      const { open: o, high, low, close: c } = q;
      if (o === null || high === null || low === null || c === null) continue;
      if (![o, high, low, c].every((x) => Number.isFinite(x) && x > 0)) continue;
      // A bar stamped inside its minute (Yahoo's live row) never beats the minute's own row.
      if (byMinute.has(t) && ts !== t) continue;
      const h = Math.max(high, o, c);
      const l = Math.min(low, o, c);
      if (h !== high || l !== low) run.health.repaired++;
      const vol = q.volume !== null && Number.isFinite(q.volume) && q.volume >= 0 ? q.volume : 0;
      byMinute.set(t, { t, o, h, l, c, vol });
    }
    return [...byMinute.values()].sort((a, b) => a.t - b.t);
  }

  /** Wraps the client's fetch for one call, to read the status and Retry-After yahoo-finance2 drops. */
  private capturingFetch(capture: Capture): typeof fetch {
    // yahoo-finance2 keeps the constructor's `fetch` option in `_opts`; a per-call `fetch`
    // module option replaces it, so wrap that one (or the global fetch).
    const base =
      (this.opts.yahoo as unknown as { _opts?: { fetch?: typeof fetch } })._opts?.fetch ?? globalThis.fetch;
    return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      const res = await base(input, init);
      capture.status = res.status;
      capture.retryAfter = res.headers.get('retry-after');
      return res;
    }) as typeof fetch;
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return sleep(this.opts.clock, ms, signal);
  }
}
