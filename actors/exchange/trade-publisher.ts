/**
 * Publishes normalised trades of one exchange to JetStream: batches of consecutive trades per
 * symbol, each with Nats-Msg-Id `<ex>:<sym>:<firstId>-<lastId>` so a retried publish is
 * deduplicated. A failed publish is retried (same id) with backoff until it lands or the actor
 * stops, so no trade is lost to a NATS hiccup. Many publishes stay in flight (DESIGN.md traps).
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { RetryPolicy } from 'cockatiel';
import { metrics } from '../../core/metrics.ts';
import {
  encodeJson,
  type GapMark,
  msgIds,
  SCHEMA_VERSION,
  subjects,
  type Trade,
  type TradeBatch,
  type TradeSource,
} from '../../core/protocol/index.ts';
import { retryForever } from '../../core/retry.ts';

export class TradePublisher {
  private readonly inflight = new Set<Promise<void>>();
  private readonly policy = retryForever(100, 2000);

  constructor(
    private readonly js: JetStreamClient,
    private readonly ex: string,
    private readonly signal: AbortSignal,
    private readonly batchMax = 200,
    private readonly maxInflight = 256,
  ) {}

  /** Queues the trades for publication; resolves once there is room for more in flight. */
  async publish(sym: string, trades: readonly Trade[], source?: TradeSource): Promise<void> {
    const subject = subjects.trade(this.ex, sym);
    for (let i = 0; i < trades.length; i += this.batchMax) {
      const chunk = trades.slice(i, i + this.batchMax);
      const batch: TradeBatch = { v: SCHEMA_VERSION, ex: this.ex, sym, trades: chunk };
      if (source && source !== 'live') batch.source = source;
      const id = msgIds.trades(this.ex, sym, chunk[0]!.id, chunk.at(-1)!.id);
      const data = encodeJson(batch);
      const p = this.policy
        .execute(() => this.js.publish(subject, data, { msgID: id }), this.signal)
        .then(() => {
          metrics.tradesPublished.inc({ exchange: this.ex }, chunk.length);
        });
      this.inflight.add(p);
      p.finally(() => this.inflight.delete(p)).catch(() => {});
      if (this.inflight.size >= this.maxInflight) await Promise.race(this.inflight);
    }
  }

  /** Waits for everything in flight (throws if a publish was abandoned because the actor stopped). */
  async flush(): Promise<void> {
    await Promise.all(this.inflight);
  }
}

/**
 * Publishes a gap mark for `sym` on its trade subject (Nats-Msg-Id `<ex>:<sym>:gap:<from>-<to>`,
 * so a retried or repeated mark is one message), retried with `policy` until it lands or `signal`
 * aborts, and counts it in tickmesh_feed_gaps_total. Publish it after the data that ends the gap,
 * so the bars it overlaps exist when the symbol actor applies it.
 */
export async function publishGapMark(
  js: JetStreamClient,
  ex: string,
  sym: string,
  gap: GapMark['gap'],
  policy: RetryPolicy,
  signal: AbortSignal,
): Promise<void> {
  const mark: GapMark = { v: SCHEMA_VERSION, ex, sym, gap };
  const msgID = msgIds.trades(ex, sym, `gap:${gap.from}`, String(gap.to));
  await policy.execute(() => js.publish(subjects.trade(ex, sym), encodeJson(mark), { msgID }), signal);
  metrics.feedGaps.inc({ exchange: ex, symbol: sym });
}
