/** Deterministic trade sequences with past timestamps, and publishing them like an exchange actor. */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Topology } from '../../core/nats.ts';
import {
  decodeJson,
  encodeJson,
  type FeedMessage,
  msgIds,
  SCHEMA_VERSION,
  STREAMS,
  subjects,
  type Trade,
  validateFeedMessage,
} from '../../core/protocol/index.ts';

/** A random walk with bursts and quiet stretches (whole empty minutes), reproducible from `seed`. */
export function syntheticTrades(opts: {
  start: number;
  count: number;
  seed?: number;
  firstId?: number;
}): Trade[] {
  let s = opts.seed ?? 7;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out: Trade[] = [];
  let ts = opts.start;
  let px = 100;
  for (let i = 0; i < opts.count; i++) {
    const r = rand();
    // Mostly sub-second spacing, sometimes a pause of a few minutes (empty buckets).
    ts += r < 0.02 ? 120_000 + Math.floor(rand() * 180_000) : Math.floor(rand() * 3000);
    px = Math.max(1, px * (1 + (rand() - 0.5) * 0.01));
    out.push({
      id: String((opts.firstId ?? 1) + i),
      ts,
      px: Number(px.toFixed(4)),
      qty: Number((rand() * 2).toFixed(6)),
      side: rand() < 0.5 ? 'buy' : 'sell',
    });
  }
  return out;
}

export async function publishTrades(
  js: JetStreamClient,
  ex: string,
  sym: string,
  trades: readonly Trade[],
  batch = 50,
  source?: 'live' | 'repair' | 'replay',
) {
  const acks = [];
  for (let i = 0; i < trades.length; i += batch) {
    const chunk = trades.slice(i, i + batch);
    acks.push(
      js.publish(subjects.trade(ex, sym), encodeJson({ v: SCHEMA_VERSION, ex, sym, trades: chunk, source }), {
        msgID: msgIds.trades(ex, sym, chunk[0]!.id, chunk.at(-1)!.id),
      }),
    );
  }
  return Promise.all(acks);
}

/** Every message stored in TRADES on one subject, validated, in stream order; throws on an unreadable one. */
export async function storedFeed(topo: Topology, subject: string): Promise<FeedMessage[]> {
  const info = await topo.jsm.streams.info(STREAMS.trades, { subjects_filter: subject });
  const total = info.state.subjects?.[subject] ?? 0;
  if (total === 0) return [];
  const consumer = await topo.js.consumers.get(STREAMS.trades, { filter_subjects: subject });
  const messages = await consumer.consume();
  const out: FeedMessage[] = [];
  try {
    for await (const m of messages) {
      const parsed = decodeJson(m.data);
      const checked = parsed.ok ? validateFeedMessage(parsed.value) : null;
      if (!checked?.ok) throw new Error(`unreadable message ${m.seq} on ${subject}`);
      out.push(checked.value);
      if (out.length >= total) break;
    }
  } finally {
    await messages.close();
  }
  return out;
}

/**
 * Every trade stored in TRADES on one subject, in stream order. A source-bar batch is an error;
 * so is a gap mark unless `gapMarks` is 'skip'.
 */
export async function storedTrades(
  topo: Topology,
  subject: string,
  gapMarks: 'skip' | 'refuse' = 'refuse',
): Promise<Trade[]> {
  const out: Trade[] = [];
  for (const m of await storedFeed(topo, subject)) {
    if (m.kind === 'trades') out.push(...m.batch.trades);
    else if (m.kind === 'bars' || gapMarks === 'refuse')
      throw new Error(`a ${m.kind === 'bars' ? 'source-bar batch' : 'gap mark'} on ${subject}`);
  }
  return out;
}
