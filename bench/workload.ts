/**
 * Trade workloads. `buildWorkload` pre-generates trades with past timestamps per symbol and
 * encodes them exactly as the exchange actor's TradePublisher does (JSON TradeBatch of up to
 * B trades, Nats-Msg-Id `<ex>:<sym>:<first>-<last>`), so the ceiling and the pipeline publish
 * the same bytes. The expected closed 1m bars come from `barsFromTrades` (the reference).
 */
import { barsFromTrades } from '../analytics/bar-builder.ts';
import {
  type Bar,
  bucketStart,
  encodeJson,
  msgIds,
  SCHEMA_VERSION,
  subjects,
  type Trade,
  type TradeBatch,
} from '../core/protocol/index.ts';

export const BENCH_SYMBOLS = ['BTC/USDT', 'ETH/USDT', 'SOL/USDT', 'AAPL', 'MSFT'] as const;

export interface EncodedBatch {
  sym: string;
  subject: string;
  msgId: string;
  data: Uint8Array;
  trades: number;
}

export interface Workload {
  ex: string;
  symbols: string[];
  batchSize: number;
  /** Round-robin over symbols, each symbol's batches in order. */
  batches: EncodedBatch[];
  totalTrades: number;
  totalBytes: number;
  /** Per symbol: the closed 1m bars the pipeline must store (the closer trade's bar stays open). */
  expected1m: Map<string, Bar[]>;
}

export interface WorkloadOptions {
  ex: string;
  symbols: readonly string[];
  tradesPerSymbol: number;
  batchSize: number;
  /** Average trades per millisecond of exchange time. */
  tradesPerMs: number;
  /** bars.graceMs of the pipeline under test (the closer trade must pass it). */
  graceMs: number;
  start?: number;
  seed?: number;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A random walk with `tradesPerMs` trades per ms on average; ids 1..count. */
export function pastTrades(count: number, start: number, tradesPerMs: number, seed: number): Trade[] {
  const rand = lcg(seed);
  const out: Trade[] = new Array(count);
  let clock = 0;
  let px = 100;
  for (let i = 0; i < count; i++) {
    clock += (rand() * 2) / tradesPerMs;
    const ts = start + Math.floor(clock);
    px = Math.max(1, px * (1 + (rand() - 0.5) * 0.001));
    out[i] = {
      id: String(i + 1),
      ts,
      px: Number(px.toFixed(4)),
      qty: Number((rand() * 2).toFixed(6)),
      side: rand() < 0.5 ? 'buy' : 'sell',
    };
  }
  return out;
}

export function encodeBatches(ex: string, sym: string, trades: readonly Trade[], batchSize: number) {
  const out: EncodedBatch[] = [];
  const subject = subjects.trade(ex, sym);
  for (let i = 0; i < trades.length; i += batchSize) {
    const chunk = trades.slice(i, i + batchSize);
    const batch: TradeBatch = { v: SCHEMA_VERSION, ex, sym, trades: chunk };
    out.push({
      sym,
      subject,
      msgId: msgIds.trades(ex, sym, chunk[0]!.id, chunk.at(-1)!.id),
      data: encodeJson(batch),
      trades: chunk.length,
    });
  }
  return out;
}

export function buildWorkload(o: WorkloadOptions): Workload {
  const start = o.start ?? Date.UTC(2024, 0, 2, 0, 0, 0);
  const perSymbol: EncodedBatch[][] = [];
  const expected1m = new Map<string, Bar[]>();
  let totalTrades = 0;
  o.symbols.forEach((sym, i) => {
    const trades = pastTrades(o.tradesPerSymbol, start, o.tradesPerMs, (o.seed ?? 11) + i * 7919);
    expected1m.set(sym, barsFromTrades(o.ex, sym, '1m', trades));
    // One more trade two buckets after the last one: its exchange time closes every bar before it.
    const last = trades.at(-1)!;
    trades.push({
      id: String(trades.length + 1),
      ts: bucketStart(last.ts, '1m') + 120_000 + o.graceMs,
      px: last.px,
      qty: 0.001,
      side: 'buy',
    });
    totalTrades += trades.length;
    perSymbol.push(encodeBatches(o.ex, sym, trades, o.batchSize));
  });
  const batches: EncodedBatch[] = [];
  const rounds = Math.max(...perSymbol.map((b) => b.length));
  for (let r = 0; r < rounds; r++)
    for (const list of perSymbol) {
      const b = list[r];
      if (b) batches.push(b);
    }
  const totalBytes = batches.reduce((n, b) => n + b.data.length, 0);
  return {
    ex: o.ex,
    symbols: [...o.symbols],
    batchSize: o.batchSize,
    batches,
    totalTrades,
    totalBytes,
    expected1m,
  };
}

/** Bounds the number of publishes in flight without racing every pending promise. */
export class Window {
  private inflight = 0;
  private readonly waiters: (() => void)[] = [];
  failed: unknown = null;

  constructor(readonly size: number) {}

  async run(task: () => Promise<unknown>): Promise<void> {
    if (this.failed) throw this.failed;
    while (this.inflight >= this.size) await new Promise<void>((r) => this.waiters.push(r));
    this.inflight++;
    task().then(
      () => this.release(),
      (e) => {
        this.failed ??= e;
        this.release();
      },
    );
  }

  private release(): void {
    this.inflight--;
    this.waiters.shift()?.();
  }

  async drain(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failed) throw this.failed;
  }
}
