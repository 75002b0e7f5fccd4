/**
 * Deterministic synthetic market data for the analytics tests and benchmark: a seeded random
 * walk of closed bars (with flat, zero-range stretches, zero-volume bars and missing buckets) and
 * trades around it.
 */
import type { Trade } from '../core/protocol/index.ts';
import type { BarPoint } from './indicators.ts';

/** mulberry32: small, fast, good enough for test data. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normal(rand: () => number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export interface WalkOptions {
  seed?: number;
  count?: number;
  /** Bar size in ms (default 5 minutes, so a few thousand bars span several UTC days). */
  stepMs?: number;
  start?: number;
  price?: number;
  /** Per-bar volatility of log returns. */
  sigma?: number;
  /** Probability that a flat stretch (o = h = l = c, 1–40 bars) starts at a bar. */
  flatChance?: number;
}

/** A random-walk series of closed bars, ascending by open time. */
export function randomWalkBars(opts: WalkOptions = {}): BarPoint[] {
  const rand = prng(opts.seed ?? 1);
  const count = opts.count ?? 3000;
  const step = opts.stepMs ?? 300_000;
  const sigma = opts.sigma ?? 0.003;
  const flatChance = opts.flatChance ?? 0.01;
  let t = opts.start ?? Date.UTC(2024, 0, 1, 0, 0);
  let price = opts.price ?? 30_000;
  let flatLeft = 0;
  let trend = 0;
  const bars: BarPoint[] = [];
  for (let i = 0; i < count; i++) {
    if (rand() < 0.02) t += step * (1 + Math.floor(rand() * 5)); // empty buckets: a gap
    if (rand() < 0.01) trend = normal(rand) * sigma * 0.3;
    if (flatLeft === 0 && i > 60 && rand() < flatChance) flatLeft = 1 + Math.floor(rand() * 40);
    let bar: BarPoint;
    if (flatLeft > 0) {
      flatLeft--;
      bar = { t, o: price, h: price, l: price, c: price, vol: rand() < 0.3 ? 0 : rand() * 2 };
    } else {
      const o = price * Math.exp(normal(rand) * sigma * 0.1);
      let h = o;
      let l = o;
      let p = o;
      for (let k = 0; k < 8; k++) {
        p *= Math.exp(trend / 8 + (normal(rand) * sigma) / Math.sqrt(8));
        if (p > h) h = p;
        if (p < l) l = p;
      }
      const vol = rand() < 0.01 ? 0 : Math.exp(normal(rand) * 0.8) * 10;
      bar = { t, o, h, l, c: p, vol };
      price = p;
    }
    bars.push(bar);
    t += step;
  }
  return bars;
}

/** `perBar` trades inside each bar's range, timestamps spread over the bar. */
export function tradesForBars(
  bars: readonly BarPoint[],
  perBar: number,
  seed = 7,
  stepMs = 300_000,
): Trade[] {
  const rand = prng(seed);
  const trades: Trade[] = [];
  let id = 0;
  for (const b of bars) {
    for (let k = 0; k < perBar; k++) {
      const px = k === 0 ? b.o : k === perBar - 1 ? b.c : b.l + (b.h - b.l) * rand();
      trades.push({
        id: String(++id),
        ts: b.t + Math.floor(((k + 0.5) * stepMs) / perBar),
        px,
        qty: (b.vol / perBar) * (0.5 + rand()),
      });
    }
  }
  return trades;
}
