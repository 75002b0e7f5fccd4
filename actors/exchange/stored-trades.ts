/**
 * Where an exchange actor resumes: the newest trade (or source bar) of a symbol already stored in
 * TRADES. The newest message on a subject may be a gap mark (it follows the data that ends its
 * gap) or another kind of batch; the lookup then reads backwards to the newest message that has
 * what it looks for.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import {
  decodeJson,
  type FeedMessage,
  STREAMS,
  subjects,
  type Trade,
  validateFeedMessage,
} from '../../core/protocol/index.ts';

/** Symbols looked up concurrently (one stream lookup each). */
const LOOKUP_CONCURRENCY = 16;

/** The newest trade of `sym` on exchange `ex` stored in TRADES, or null when there is none. */
export function lastStoredTrade(jsm: JetStreamManager, ex: string, sym: string): Promise<Trade | null> {
  return lastStored(jsm, subjects.trade(ex, sym), (m) =>
    m.kind === 'trades' ? m.batch.trades.at(-1) : undefined,
  );
}

/**
 * What `pick` finds in the newest stored message on `subject` for which it finds anything (it
 * sees each message as a validated FeedMessage; unreadable messages are passed over). Null when
 * no message has it.
 */
export async function lastStored<T>(
  jsm: JetStreamManager,
  subject: string,
  pick: (m: FeedMessage) => T | undefined,
): Promise<T | null> {
  const last = await jsm.streams.getMessage(STREAMS.trades, { last_by_subj: subject });
  if (!last) return null;
  return pickIn(last.data, pick) ?? pickBefore(jsm, subject, last.seq, pick);
}

/** lastStoredTrade of every symbol that has one (duplicates looked up once). */
export function lastStoredTrades(
  jsm: JetStreamManager,
  ex: string,
  symbols: Iterable<string>,
): Promise<Map<string, Trade>> {
  return lookupEach(symbols, (sym) => lastStoredTrade(jsm, ex, sym));
}

/**
 * `lookup` of every distinct symbol, LOOKUP_CONCURRENCY at a time (one stream lookup each);
 * symbols it finds nothing for (null) are left out.
 */
export async function lookupEach<T>(
  symbols: Iterable<string>,
  lookup: (sym: string) => Promise<T | null>,
): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  const unique = [...new Set(symbols)];
  for (let i = 0; i < unique.length; i += LOOKUP_CONCURRENCY) {
    await Promise.all(
      unique.slice(i, i + LOOKUP_CONCURRENCY).map(async (sym) => {
        const found = await lookup(sym);
        if (found !== null) out.set(sym, found);
      }),
    );
  }
  return out;
}

/**
 * What `pick` finds in the newest message on `subject` stored before sequence `seq`. Widens a
 * window backwards until a message in it has something, reading the subject's messages in it
 * forward.
 */
async function pickBefore<T>(
  jsm: JetStreamManager,
  subject: string,
  seq: number,
  pick: (m: FeedMessage) => T | undefined,
): Promise<T | null> {
  for (let back = 64; ; back *= 4) {
    const from = Math.max(1, seq - back);
    let found: T | undefined;
    for (let cursor = from; ; ) {
      // MSG.GET with next_by_subj (nats-server 2.9+): the first message on subject at or after seq.
      const query = { seq: cursor, next_by_subj: subject } as unknown as { seq: number };
      const m = await jsm.streams.getMessage(STREAMS.trades, query);
      if (!m || m.seq >= seq) break;
      found = pickIn(m.data, pick) ?? found;
      cursor = m.seq + 1;
    }
    if (found !== undefined) return found;
    if (from === 1) return null;
  }
}

function pickIn<T>(data: Uint8Array, pick: (m: FeedMessage) => T | undefined): T | undefined {
  const parsed = decodeJson(data);
  const checked = parsed.ok ? validateFeedMessage(parsed.value) : null;
  return checked?.ok ? pick(checked.value) : undefined;
}
