/**
 * `tickmesh verify`: recomputes the bars of every symbol from the trades kept in the TRADES
 * stream and compares them with the `candles` table — the check behind "no duplicate and no
 * missing closed bar". Only buckets fully covered by the stream and already closed are compared.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, nanos } from '@nats-io/nats-core';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Pool } from '../core/db.ts';
import { infoOrNull } from '../core/nats.ts';
import {
  decodeJson,
  STREAMS,
  subjects,
  TIMEFRAME_MS,
  TIMEFRAMES,
  type Trade,
  validateTradeBatch,
} from '../core/protocol/index.ts';

export interface SeriesReport {
  exchange: string;
  symbol: string;
  timeframe: string;
  /** The compared range [from, to): closed buckets wholly covered by the stream (ISO times). */
  from: string;
  to: string;
  expected: number;
  stored: number;
  missing: number;
  different: number;
  extra: number;
}

async function tradesOf(nc: NatsConnection, ex: string, sym: string): Promise<Trade[]> {
  const jsm = await jetstreamManager(nc);
  const subject = subjects.trade(ex, sym);
  const info = await infoOrNull(jsm.streams.info(STREAMS.trades, { subjects_filter: subject }));
  const total = info?.state.subjects?.[subject] ?? 0;
  if (total === 0) return [];
  // An ephemeral consumer with a single filter subject works on NATS 2.9 as well as 2.10+.
  const ci = await jsm.consumers.add(STREAMS.trades, {
    filter_subject: subject,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    inactive_threshold: nanos(30_000),
  });
  const c = await jetstream(nc).consumers.get(STREAMS.trades, ci.name);
  const out: Trade[] = [];
  const seen = new Set<string>();
  let n = 0;
  const iter = await c.consume({ max_messages: 1000 });
  for await (const m of iter) {
    const parsed = decodeJson(m.data);
    const checked = parsed.ok ? validateTradeBatch(parsed.value) : null;
    if (checked?.ok) {
      for (const t of checked.value.batch.trades) {
        if (seen.has(t.id)) continue;
        seen.add(t.id);
        out.push(t);
      }
    }
    if (++n >= total) break;
  }
  iter.stop();
  await jsm.consumers.delete(STREAMS.trades, ci.name).catch(() => false);
  return out;
}

export async function verifyBars(nc: NatsConnection, pool: Pool, graceMs = 1000): Promise<SeriesReport[]> {
  const { rows: series } = await pool.query<{ exchange: string; symbol: string }>(
    'SELECT exchange, symbol FROM symbols ORDER BY 1, 2',
  );
  const reports: SeriesReport[] = [];
  for (const { exchange, symbol } of series) {
    const trades = await tradesOf(nc, exchange, symbol);
    if (trades.length === 0) continue;
    const first = trades.reduce((m, t) => Math.min(m, t.ts), Number.POSITIVE_INFINITY);
    const last = trades.reduce((m, t) => Math.max(m, t.ts), 0);
    for (const tf of TIMEFRAMES) {
      const size = TIMEFRAME_MS[tf];
      // The stream may have aged out the start of the first bucket; the last one may still be open.
      const from = Math.ceil(first / size) * size;
      const to = Math.floor((last - graceMs) / size) * size;
      const want = barsFromTrades(exchange, symbol, tf, trades).filter(
        (b) => b.t >= from && b.t + size <= to,
      );
      const { rows } = await pool.query(
        `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, open, high, low, close, volume, trades
           FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
            AND ts >= to_timestamp($4 / 1000.0) AND ts + $5 * interval '1 millisecond' <= to_timestamp($6 / 1000.0)`,
        [exchange, symbol, tf, from, size, to],
      );
      const stored = new Map(rows.map((r) => [r.t as number, r]));
      let missing = 0;
      let different = 0;
      for (const b of want) {
        const r = stored.get(b.t);
        if (!r) missing++;
        else if (
          r.open !== b.o ||
          r.high !== b.h ||
          r.low !== b.l ||
          r.close !== b.c ||
          r.trades !== b.n ||
          Math.abs(r.volume - b.vol) > 1e-6 * Math.max(1, b.vol)
        )
          different++;
        stored.delete(b.t);
      }
      reports.push({
        exchange,
        symbol,
        timeframe: tf,
        from: new Date(from).toISOString(),
        to: new Date(Math.max(from, to)).toISOString(),
        expected: want.length,
        stored: rows.length,
        missing,
        different,
        extra: stored.size,
      });
    }
  }
  return reports;
}
