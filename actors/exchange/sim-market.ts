/**
 * A seeded, reproducible random-walk market for one symbol. Every trade's randomness is a pure
 * function of (seed, symbol, trade id), so the sequence is the same however it is batched and
 * across restarts (the actor resumes from the last trade in the stream).
 */
import type { Trade } from '../../core/protocol/index.ts';

const START_PRICES: Record<string, number> = {
  'BTC/USDT': 60_000,
  'ETH/USDT': 3_000,
  'SOL/USDT': 150,
  AAPL: 190,
  MSFT: 420,
};

/** 32-bit FNV-1a of a string. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32-style finaliser: a well-mixed uniform in [0, 1) from a 32-bit key. */
function uniform(key: number): number {
  let z = (key + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return (z >>> 0) / 4294967296;
}

export interface SimCursor {
  /** Id of the last trade emitted (0 before the first). */
  id: number;
  px: number;
  ts: number;
}

export class SimMarket {
  private readonly base: number;
  cursor: SimCursor;

  constructor(
    readonly seed: number,
    readonly symbol: string,
    resumeFrom?: SimCursor,
    private readonly volatility = 0.0004,
  ) {
    this.base = fnv1a(`${seed}:${symbol}`);
    this.cursor = resumeFrom ?? { id: 0, px: START_PRICES[symbol] ?? 100, ts: 0 };
  }

  private u(id: number, k: number): number {
    return uniform((this.base ^ Math.imul(id, 0x27d4eb2d)) + k * 0x165667b1);
  }

  /** `n` trades with timestamps spread evenly over (from, to], never going back in time. */
  next(n: number, from: number, to: number): Trade[] {
    const out: Trade[] = [];
    let { id, px, ts } = this.cursor;
    for (let i = 1; i <= n; i++) {
      id += 1;
      // Box–Muller normal from two uniforms of this trade id.
      const u1 = Math.max(this.u(id, 0), 1e-12);
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * this.u(id, 1));
      px = Math.max(px * Math.exp(this.volatility * z), 1e-8);
      const price = Number(px.toPrecision(8));
      const qty = Number((Math.exp(this.u(id, 2) * 4 - 3) * 0.5).toFixed(6));
      ts = Math.max(ts, Math.floor(from + ((to - from) * i) / n));
      out.push({ id: String(id), ts, px: price, qty, side: this.u(id, 3) < 0.5 ? 'buy' : 'sell' });
    }
    this.cursor = { id, px, ts };
    return out;
  }
}
