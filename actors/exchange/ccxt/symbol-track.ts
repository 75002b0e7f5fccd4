/**
 * Per-symbol tracking, pure (no I/O, no clock): turning ccxt trades into tickmesh trades, putting
 * them in exchange order, and remembering what was handed on (the watermark, the recent ids,
 * the EWMA of the exchange-time interval between trades) so nothing is handed on twice.
 */
import { type Trade, tradeProblem } from '../../../core/protocol/index.ts';
import type { CcxtTrade, ResumePoint } from './types.ts';

/** A ccxt trade as a tickmesh Trade, or the reason it is unusable. */
export function normaliseTrade(t: CcxtTrade): { trade: Trade } | { problem: string } {
  const side = t.side === 'buy' || t.side === 'sell' ? t.side : undefined;
  const trade: Trade = {
    id: typeof t.id === 'string' || typeof t.id === 'number' ? String(t.id) : '',
    ts: t.timestamp as number,
    px: t.price as number,
    qty: t.amount as number,
    ...(side ? { side } : {}),
  };
  const problem = tradeProblem(trade);
  return problem ? { problem } : { trade };
}

const NUMERIC_ID = /^\d{1,30}$/;
export const numericId = (id: string): bigint | undefined => (NUMERIC_ID.test(id) ? BigInt(id) : undefined);

/**
 * One symbol's memory of what was handed on: the watermark (last id/ts), the recent ids (a
 * bounded time window) and the EWMA of the exchange-time interval between trades. Pure: no I/O,
 * no clock.
 */
export class SymbolTrack {
  lastId: string | undefined;
  lastTs: number | undefined;
  expectedIntervalMs: number | undefined;
  private lastNum: bigint | undefined;
  private readonly recent = new Map<string, number>(); // id -> ts
  /**
   * The ids of `recent` oldest first, from `head` on: evicting through this queue is O(1). (Walking
   * the Map from its start instead visits every entry deleted since its last rehash: at tens of
   * thousands of trades a second that walk took half the feed's time.)
   */
  private readonly order: string[] = [];
  private head = 0;

  constructor(
    private readonly opts: {
      windowMs: number;
      maxIds: number;
      alpha: number;
      numericIdsIncrease: boolean;
      maxSampleMs: number;
    },
    resume?: ResumePoint,
  ) {
    if (resume) this.remember(resume.id, resume.ts);
  }

  /** Whether `t` has not been handed on yet and may follow the watermark. */
  isNew(t: Trade): boolean {
    return this.isNewWith(t, numericId(t.id));
  }

  /** Records `t` as handed on if it is new; returns whether it was. */
  accept(t: Trade): boolean {
    const n = numericId(t.id); // parsed once: this runs for every trade
    if (!this.isNewWith(t, n)) return false;
    if (this.lastTs !== undefined) {
      // One long pause (a resume across downtime) must not dominate the estimate for long.
      const gap = Math.min(this.opts.maxSampleMs, Math.max(0, t.ts - this.lastTs));
      const prev = this.expectedIntervalMs;
      this.expectedIntervalMs = prev === undefined ? gap : prev + this.opts.alpha * (gap - prev);
    }
    this.remember(t.id, t.ts, n);
    return true;
  }

  private isNewWith(t: Trade, n: bigint | undefined): boolean {
    if (this.opts.numericIdsIncrease && this.lastNum !== undefined && n !== undefined)
      return n > this.lastNum;
    if (this.recent.has(t.id)) return false;
    // An unseen trade older than the watermark cannot be placed in order any more.
    return this.lastTs === undefined || t.ts >= this.lastTs;
  }

  private remember(id: string, ts: number, n = numericId(id)): void {
    this.lastId = id;
    this.lastTs = this.lastTs === undefined ? ts : Math.max(this.lastTs, ts);
    if (n !== undefined && (this.lastNum === undefined || n > this.lastNum)) this.lastNum = n;
    // Increasing numeric ids are judged by lastNum alone: `recent` is for the other ids.
    if (n !== undefined && this.opts.numericIdsIncrease) return;
    if (!this.recent.has(id)) this.order.push(id);
    this.recent.set(id, ts);
    const floor = this.lastTs - this.opts.windowMs;
    while (this.head < this.order.length) {
      const oldId = this.order[this.head]!;
      if (this.recent.get(oldId)! >= floor && this.recent.size <= this.opts.maxIds) break;
      this.recent.delete(oldId);
      this.head++;
    }
    if (this.head >= 4096 && this.head * 2 >= this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * Trades in exchange order. ccxt's parseTrades sorts what one call parsed (a REST page, a
 * websocket snapshot or a multi-trade frame) by timestamp and then by id as a *string*: within
 * one millisecond '10000' sorts before '9999', and the feed would take the trades behind that
 * boundary for already seen. Numeric ids are put back in numeric order (cheap when in order).
 */
export function inExchangeOrder(trades: Trade[]): Trade[] {
  let inOrder = true;
  for (let i = 1; i < trades.length && inOrder; i++) {
    const a = trades[i - 1]!;
    const b = trades[i]!;
    inOrder = a.ts < b.ts || (a.ts === b.ts && compareNumericIds(a.id, b.id) <= 0);
  }
  if (inOrder || !trades.every((t) => CANONICAL_ID.test(t.id))) return trades;
  return [...trades].sort((a, b) => a.ts - b.ts || compareNumericIds(a.id, b.id));
}

const CANONICAL_ID = /^(?:0|[1-9]\d{0,29})$/;

/** Orders decimal integer strings without leading zeros by value. */
function compareNumericIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** How many ids lie between `lastId` and `t` (0 when `t` follows it or ids are not numeric). */
export function idsSkipped(lastId: string | undefined, t: Trade): bigint {
  const last = lastId === undefined ? undefined : numericId(lastId);
  const n = numericId(t.id);
  if (last === undefined || n === undefined || n <= last + 1n) return 0n;
  return n - last - 1n;
}

/** Whether REST trade `t` is (or is past) the live trade `live`. */
export function reaches(t: Trade, live: Trade, numericIdsIncrease: boolean): boolean {
  if (t.id === live.id) return true;
  const a = numericId(t.id);
  const b = numericId(live.id);
  if (numericIdsIncrease && a !== undefined && b !== undefined) return a >= b;
  return t.ts > live.ts;
}
