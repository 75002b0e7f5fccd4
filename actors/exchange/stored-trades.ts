/**
 * Where an exchange actor resumes: the newest trade of a symbol already stored in TRADES. The
 * newest message on a subject may be a gap mark (it follows the trades that end its gap) or a
 * source-bar batch; the lookup then reads backwards to the newest trade batch.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { decodeJson, STREAMS, subjects, type Trade, validateFeedMessage } from '../../core/protocol/index.ts';

/** Symbols looked up concurrently (one stream lookup each). */
const LOOKUP_CONCURRENCY = 16;

/** The newest trade of `sym` on exchange `ex` stored in TRADES, or null when there is none. */
export async function lastStoredTrade(jsm: JetStreamManager, ex: string, sym: string): Promise<Trade | null> {
  const subject = subjects.trade(ex, sym);
  const last = await jsm.streams.getMessage(STREAMS.trades, { last_by_subj: subject });
  if (!last) return null;
  return lastTradeIn(last.data) ?? lastTradeBefore(jsm, subject, last.seq);
}

/** lastStoredTrade of every symbol that has one (duplicates looked up once). */
export async function lastStoredTrades(
  jsm: JetStreamManager,
  ex: string,
  symbols: Iterable<string>,
): Promise<Map<string, Trade>> {
  const out = new Map<string, Trade>();
  const unique = [...new Set(symbols)];
  for (let i = 0; i < unique.length; i += LOOKUP_CONCURRENCY) {
    await Promise.all(
      unique.slice(i, i + LOOKUP_CONCURRENCY).map(async (sym) => {
        const t = await lastStoredTrade(jsm, ex, sym);
        if (t) out.set(sym, t);
      }),
    );
  }
  return out;
}

/**
 * The newest trade on `subject` stored before sequence `seq`. Widens a window backwards until
 * it holds a trade batch, reading the subject's messages in it forward.
 */
async function lastTradeBefore(jsm: JetStreamManager, subject: string, seq: number): Promise<Trade | null> {
  for (let back = 64; ; back *= 4) {
    const from = Math.max(1, seq - back);
    let found: Trade | null = null;
    for (let cursor = from; ; ) {
      // MSG.GET with next_by_subj (nats-server 2.9+): the first message on subject at or after seq.
      const query = { seq: cursor, next_by_subj: subject } as unknown as { seq: number };
      const m = await jsm.streams.getMessage(STREAMS.trades, query);
      if (!m || m.seq >= seq) break;
      found = lastTradeIn(m.data) ?? found;
      cursor = m.seq + 1;
    }
    if (found || from === 1) return found;
  }
}

/** The last trade of a stored trade batch; undefined for anything else (gap marks, source bars). */
function lastTradeIn(data: Uint8Array): Trade | undefined {
  const parsed = decodeJson(data);
  const checked = parsed.ok ? validateFeedMessage(parsed.value) : null;
  if (!checked?.ok || checked.value.kind !== 'trades') return undefined;
  return checked.value.batch.trades.at(-1);
}
