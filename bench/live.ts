/**
 * Live load for the latency and RSS sections: trades stamped with the wall clock, published
 * every few milliseconds at a steady total rate, one batch per symbol per tick. Each batch has
 * its own price (all its trades share it), so a forming bar's `close` names the newest batch it
 * contains, and `sentAt(close)` gives the wall time that batch was published.
 *
 * Also a small graphql-ws client that subscribes to the 1m candles of some symbols.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { metrics } from '../core/metrics.ts';
import { encodeJson, msgIds, SCHEMA_VERSION, subjects, type Trade } from '../core/protocol/index.ts';
import { metricSum, nowMs, waitFor } from './infra.ts';

export class LiveFeed {
  private readonly sent = new Map<number, number>();
  /** Per symbol: batches not yet seen in a forming update, oldest first. */
  private readonly unseen = new Map<string, { px: number; at: number }[]>();
  private readonly nextId = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private inflight = 0;
  /** Trades whose publish was acknowledged. */
  published = 0;
  errors = 0;
  maxInflight = 0;
  /** JetStream publish → ack (ms), with the wall time of the ack; only while `recordAcks`. */
  readonly acks: { at: number; ms: number }[] = [];
  recordAcks = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly ex: string,
    private readonly symbols: readonly string[],
    private readonly ratePerSec: number,
    private readonly opts: {
      tickMs?: number;
      trackPrices?: boolean;
      /** Where to publish (default: the trades subject, as an exchange actor would). */
      subjectOf?: (sym: string) => string;
    } = {},
  ) {}

  start(): void {
    const tickMs = this.opts.tickMs ?? 5;
    let last = nowMs();
    let owed = 0;
    let turn = 0;
    this.timer = setInterval(() => {
      const now = nowMs();
      owed += (this.ratePerSec * (now - last)) / 1000;
      last = now;
      const n = Math.floor(owed);
      owed -= n;
      const k = this.symbols.length;
      for (let i = 0; i < k; i++) {
        // Spread n over the symbols, rotating who gets the remainder.
        const share = Math.floor(n / k) + ((i - turn + k) % k < n % k ? 1 : 0);
        if (share > 0) this.publish(this.symbols[i]!, share);
      }
      turn = (turn + (n % k)) % k;
      this.prune(now);
    }, tickMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Wall time at which the batch with this price was handed to the client, if known. */
  sentAt(price: number): number | undefined {
    return this.sent.get(price);
  }

  /**
   * A forming update of `sym` with this close arrived at `receivedAt`: every batch of the symbol
   * up to that price is now visible. Returns, for each newly visible batch, publish → visible (ms).
   */
  visible(sym: string, close: number, receivedAt: number): number[] {
    const list = this.unseen.get(sym);
    if (!list || !this.sent.has(close)) return [];
    let n = 0;
    while (n < list.length && list[n]!.px <= close) n++;
    return list.splice(0, n).map((b) => receivedAt - b.at);
  }

  private publish(sym: string, count: number): void {
    const first = this.nextId.get(sym) ?? 1;
    this.nextId.set(sym, first + count);
    const px = 1000 + ++this.seq / 100;
    const ts = Date.now();
    const trades: Trade[] = [];
    for (let i = 0; i < count; i++) trades.push({ id: String(first + i), ts, px, qty: 0.01, side: 'buy' });
    const data = encodeJson({ v: SCHEMA_VERSION, ex: this.ex, sym, trades });
    const msgID = msgIds.trades(this.ex, sym, trades[0]!.id, trades.at(-1)!.id);
    const sentAt = nowMs();
    if (this.opts.trackPrices ?? true) {
      const at = sentAt;
      this.sent.set(px, at);
      const list = this.unseen.get(sym) ?? [];
      list.push({ px, at });
      this.unseen.set(sym, list);
    }
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    const subject = this.opts.subjectOf?.(sym) ?? subjects.trade(this.ex, sym);
    this.js.publish(subject, data, { msgID }).then(
      () => {
        this.inflight--;
        this.published += count;
        if (this.recordAcks) {
          const at = nowMs();
          this.acks.push({ at, ms: at - sentAt });
        }
      },
      () => {
        this.inflight--;
        this.errors++;
      },
    );
  }

  /** Forgets prices older than a minute (bounded memory over long runs). */
  private prune(now: number): void {
    for (const [px, at] of this.sent) {
      if (now - at < 60_000) break;
      this.sent.delete(px);
    }
    for (const list of this.unseen.values()) {
      let n = 0;
      while (n < list.length && now - list[n]!.at >= 60_000) n++;
      if (n > 0) list.splice(0, n);
    }
  }
}

export interface CandleUpdate {
  timeMs: number;
  closed: boolean;
  trades: number;
  close: number;
}

const CANDLES = `subscription($ex: String!, $sym: String!) {
  candles(exchange: $ex, symbol: $sym, timeframe: "1m") { timeMs closed trades close }
}`;

export interface CandleWatch {
  errors: unknown[];
  close(): Promise<void>;
}

/** One graphql-ws connection, one `candles` subscription per symbol; resolves once all are live. */
export async function watchCandles(
  gatewayUrl: string,
  ex: string,
  symbols: readonly string[],
  onUpdate: (sym: string, c: CandleUpdate, receivedAt: number) => void,
): Promise<CandleWatch> {
  const before = await metricSum(metrics.subscriptions);
  const client: Client = createClient({
    url: `${gatewayUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
  });
  const errors: unknown[] = [];
  const disposers = symbols.map((sym) =>
    client.subscribe<{ candles: CandleUpdate }>(
      { query: CANDLES, variables: { ex, sym } },
      {
        next: (v) => {
          const at = nowMs();
          if (v.errors) errors.push(...v.errors);
          if (v.data) onUpdate(sym, v.data.candles, at);
        },
        error: (e) => errors.push(e),
        complete: () => {},
      },
    ),
  );
  // The gateway counts a subscription once its NATS topic is attached.
  await waitFor(
    async () => (await metricSum(metrics.subscriptions)) - before >= symbols.length,
    'subscriptions registered',
    20_000,
  );
  return {
    errors,
    async close() {
      for (const d of disposers) d();
      await client.dispose();
    },
  };
}
