/**
 * The bus does not trust a single message (real nats-server with the generated users, real
 * PostgreSQL, supervisor + worker in this process). Everything here is published with the
 * credential of the principal allowed to publish it, as a stolen credential or a buggy feed would:
 *
 * 1. Three trades at 1e9 in one message (exchange credential) do not move the stored candle;
 *    the same level kept over several messages across `confirmSpanMs` of stream time is a real
 *    move and lands in the bar.
 * 2. Source bars from an exchange whose kind publishes trades are quarantined; on a source-bar
 *    exchange (kind yahoo) an inconsistent bar (high < low) and an absurd one are quarantined,
 *    the good bars of the same messages stored.
 * 3. The writer stores no bar whose content names another series than its subject, no
 *    misaligned bar and no bar of an unknown symbol (symbol credential); it quarantines and acks
 *    them, and the good bars around them are stored.
 */
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../core/metrics.ts';
import { connectNats, type NatsConnection } from '../core/nats.ts';
import type { NatsPrincipal } from '../core/nats-permissions.ts';
import {
  type Bar,
  encodeJson,
  permissionSubjects,
  type Quarantined,
  SCHEMA_VERSION,
  type SourceBar,
  STREAMS,
  subjects,
  type Trade,
} from '../core/protocol/index.ts';
import { type FakeYahoo, startFakeYahoo } from './fakes/fake-yahoo.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';

const EX = 'trust';
const SYM = 'MOVE/USDT';
const OTHER = 'OTHER/USDT';
/** A source-bar exchange (kind yahoo) and its symbol. */
const BARS_EX = 'srcbars';
const SRC = 'SRC';
const MIN = 60_000;
const START = Date.UTC(2024, 4, 6, 10, 0, 0);
const SPAN_MS = 300;

type Topo = Awaited<ReturnType<typeof topology>>;

/** Sum of a counter's values whose labels match. */
async function counted(metric: typeof metrics.quarantined, match: Record<string, string>): Promise<number> {
  return (await metric.get()).values
    .filter((v) =>
      Object.entries(match).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want),
    )
    .reduce((n, v) => n + v.value, 0);
}

describe('the bus does not trust a single message', () => {
  let sys: TestSystem;
  let topo: Topo;
  let fake: FakeYahoo;
  const opened: NatsConnection[] = [];
  const quarantined: Quarantined[] = [];

  beforeAll(async () => {
    // The yahoo actor of the source-bar exchange only ever reaches this local fake (no series: no bars).
    fake = await startFakeYahoo({ now: () => Date.now(), realTime: true });
    sys = await startSystem({
      exchange: { id: EX, symbols: [SYM, OTHER] },
      roles: ['supervisor', 'worker'],
      config: { analytics: { quality: { confirmSpanMs: SPAN_MS } } },
      adapters: { yahoo: () => fake.client() },
      beforeRoles: async (pool) => {
        await pool.query(`INSERT INTO exchanges (id, name, kind) VALUES ($1, $1, 'yahoo')`, [BARS_EX]);
        await pool.query(`INSERT INTO symbols (exchange, symbol) VALUES ($1, $2)`, [BARS_EX, SRC]);
      },
    });
    topo = await topology(sys.cfg);
    topo.nc.subscribe(permissionSubjects.quarantine, {
      callback: (_e, m) => void quarantined.push(m.json()),
    });
    await topo.nc.flush();
    for (const id of [
      `symbol.${EX}.MOVE-USDT`,
      `symbol.${EX}.OTHER-USDT`,
      `symbol.${BARS_EX}.${SRC}`,
      'writer.bars',
    ])
      await eventually(async () => {
        const e = await topo.kv.health.get(id);
        return e?.operation === 'PUT' && e.string().includes('"status":"running"');
      }, `${id} running`);
  });

  afterAll(async () => {
    for (const nc of opened) await nc.close().catch(() => {});
    await topo?.[Symbol.asyncDispose]();
    await sys?.stop();
    await fake?.close();
  });

  async function as(principal: NatsPrincipal) {
    const nc = await connectNats(sys.nats.url, `test-${principal}`, {
      user: principal,
      pass: sys.nats.passwords[principal],
    });
    opened.push(nc);
    return jetstream(nc);
  }

  const reasonsOf = (prefix: RegExp) => quarantined.filter((q) => prefix.test(q.reason));
  const payloadId = (q: Quarantined) => (q.payload as { id?: string } | null)?.id;

  it('keeps one message of forged trades out of the candle, and takes the level kept over messages and time', async () => {
    const js = await as('exchange');
    let n = 0;
    /** One message of trades, as the exchange actor publishes them (source live). */
    const publish = async (trades: Trade[]) =>
      js.publish(subjects.trade(EX, SYM), encodeJson({ v: SCHEMA_VERSION, ex: EX, sym: SYM, trades }), {
        msgID: `bt-${++n}`,
      });
    const trade = (id: string, ts: number, px: number): Trade => ({ id, ts, px, qty: 1, side: 'buy' });
    const base = (from: number, k: number) =>
      Array.from({ length: k }, (_, i) => trade(`b${from}-${i}`, from + i * 500, 100 + (i % 5) * 0.02));

    // Minute 0: ordinary trades, then three trades at 1e9 in one message, then more ordinary ones.
    await publish(base(START, 40));
    const forged = [0, 1, 2].map((i) => trade(`forged-${i}`, START + 25_000 + i, 1e9));
    await publish(forged);
    await publish(base(START + 30_000, 20));
    // Minute 1 closes minute 0.
    await publish([trade('close-0', START + MIN + 1000, 100)]);
    const bar0 = await eventually(
      async () => (await storedBars(sys.db.pool, '1m', EX, SYM)).find((b) => b.t === START),
      'minute 0 stored',
    );
    expect(bar0.high).toBeLessThan(101);
    expect(bar0.trades).toBe(40 + 20);
    const forgedOut = await eventually(
      async () => (forged.every((t) => quarantined.some((q) => payloadId(q) === t.id)) ? true : null),
      'the forged trades quarantined',
    );
    expect(forgedOut).toBe(true);
    for (const t of forged)
      expect(quarantined.find((q) => payloadId(q) === t.id)?.reason).toMatch(/^quality jump: px 1000000000 /);

    // Minute 2: the new level, three trades a message, each message sent once the previous one
    // was judged, until it is taken as a real move.
    const live: Bar[] = [];
    topo.nc.subscribe(subjects.live('1m', EX, SYM), { callback: (_e, m) => void live.push(m.json()) });
    await topo.nc.flush();
    const moved = () => live.some((b) => b.t === START + 2 * MIN && b.h === 1e9);
    const seqs: number[] = [];
    for (let k = 0; !moved(); k++) {
      expect(k).toBeLessThan(200);
      const trades = [0, 1, 2].map((i) => trade(`move-${k}-${i}`, START + 2 * MIN + k * 10 + i, 1e9));
      seqs.push((await publish(trades)).seq);
      await eventually(
        async () => moved() || quarantined.some((q) => payloadId(q) === `move-${k}-2`),
        `move message ${k} judged`,
      );
    }
    // Outliers from at least three messages, the confirming one stored ≥ SPAN_MS after the first.
    expect(seqs.length).toBeGreaterThanOrEqual(3);
    const storedAt = async (seq: number) => {
      const m = await topo.jsm.streams.getMessage(STREAMS.trades, { seq });
      if (!m) throw new Error(`TRADES message ${seq} missing`);
      return m.time.getTime();
    };
    expect((await storedAt(seqs.at(-1)!)) - (await storedAt(seqs[0]!))).toBeGreaterThanOrEqual(SPAN_MS);
    // Every message before the confirming one stays quarantined; the confirming one is in the bar.
    for (let k = 0; k < seqs.length - 1; k++)
      expect(quarantined.some((q) => payloadId(q) === `move-${k}-0`)).toBe(true);
    expect(quarantined.some((q) => payloadId(q)?.startsWith(`move-${seqs.length - 1}-`))).toBe(false);
    await publish([trade('close-2', START + 3 * MIN + 1000, 1e9)]);
    const bar2 = await eventually(
      async () => (await storedBars(sys.db.pool, '1m', EX, SYM)).find((b) => b.t === START + 2 * MIN),
      'minute 2 stored',
    );
    expect(bar2).toMatchObject({ open: 1e9, high: 1e9, low: 1e9, close: 1e9, trades: 3 });
  });

  it('quarantines source bars from a trade exchange, and inconsistent or absurd ones from a source-bar exchange', async () => {
    const js = await as('exchange');
    const T = Date.UTC(2025, 2, 11, 14, 0, 0);
    const sb = (i: number, c = 220, more: Partial<SourceBar> = {}): SourceBar => ({
      t: T + i * MIN,
      o: c,
      h: c + 0.25,
      l: c - 0.25,
      c,
      vol: 1000,
      ...more,
    });
    const send = (ex: string, sym: string, bars: SourceBar[], id: string) =>
      js.publish(subjects.trade(ex, sym), encodeJson({ v: SCHEMA_VERSION, ex, sym, bars }), { msgID: id });

    const before = reasonsOf(/^source bars: /).length;
    await send(EX, OTHER, [sb(0), sb(1)], 'sb-trade-kind');
    await eventually(
      async () => reasonsOf(/^source bars: /).length > before,
      'source bars from a trade exchange quarantined',
    );
    expect(reasonsOf(/^source bars: /).at(-1)).toMatchObject({
      ex: EX,
      sym: OTHER,
      reason: `source bars: ${EX} is not a source-bar exchange`,
      source: 'symbol',
    });

    // The source-bar exchange: ten good bars, then one with high < low and one at 1e9 among good ones.
    await send(
      BARS_EX,
      SRC,
      Array.from({ length: 10 }, (_, i) => sb(i)),
      'sb-good',
    );
    await send(BARS_EX, SRC, [sb(10), sb(11, 220, { h: 219, l: 221 }), sb(12)], 'sb-inconsistent');
    await send(BARS_EX, SRC, [sb(13), sb(14, 1e9), sb(15)], 'sb-absurd');
    const want = [...Array(11).keys(), 12, 13, 15].map((i) => T + i * MIN);
    const rows = await eventually(async () => {
      const r = await storedBars(sys.db.pool, '1m', BARS_EX, SRC);
      return r.some((b) => b.t === T + 15 * MIN) ? r : null;
    }, 'source bars stored');
    expect(rows.map((r) => r.t)).toEqual(want);
    expect(Math.max(...rows.map((r) => r.high))).toBe(220.25);
    const fromSrc = quarantined.filter((q) => q.ex === BARS_EX);
    expect(fromSrc.map((q) => [q.reason.split(':')[0], (q.payload as SourceBar).t])).toEqual([
      ['OHLC out of order or not positive', T + 11 * MIN],
      ['quality jump', T + 14 * MIN],
    ]);
    // The trade exchange stored no source bar.
    expect(await storedBars(sys.db.pool, '1m', EX, OTHER)).toEqual([]);
  });

  it('the writer stores only bars of known symbols whose content matches their subject', async () => {
    const js = await as('symbol');
    const T = Date.UTC(2024, 6, 1, 0, 0, 0);
    const bar = (sym: string, t = T, more: Partial<Bar> = {}): Bar => ({
      v: SCHEMA_VERSION,
      ex: EX,
      sym,
      tf: '1m',
      t,
      o: 5,
      h: 6,
      l: 4,
      c: 5,
      vol: 10,
      n: 3,
      closed: true,
      rev: 0,
      gap: 0,
      ft: t,
      lt: t + 59_000,
      ...more,
    });
    const writerBefore = {
      mismatch: await counted(metrics.quarantined, { source: 'writer', reason: 'subject mismatch' }),
      unknown: await counted(metrics.quarantined, { source: 'writer', reason: 'unknown symbol' }),
      misaligned: await counted(metrics.quarantined, { source: 'writer', reason: 'misaligned' }),
    };
    // On MOVE's subject, a bar naming OTHER (it would overwrite OTHER's candle).
    await js.publish(subjects.bar('1m', EX, SYM), encodeJson(bar(OTHER, T, { h: 9e9 })), { msgID: 'w-1' });
    // A consistent bar of a symbol nobody added.
    await js.publish(subjects.bar('1m', EX, 'GHOST/USDT'), encodeJson(bar('GHOST/USDT')), { msgID: 'w-2' });
    // A bar between two minutes.
    await js.publish(subjects.bar('1m', EX, OTHER), encodeJson(bar(OTHER, T + 30_000)), { msgID: 'w-3' });
    // And a good one, after all of them.
    await js.publish(subjects.bar('1m', EX, OTHER), encodeJson(bar(OTHER, T + MIN)), { msgID: 'w-4' });

    const stored = await eventually(
      async () => (await storedBars(sys.db.pool, '1m', EX, OTHER)).find((b) => b.t === T + MIN),
      'the good bar stored',
    );
    expect(stored).toMatchObject({ open: 5, high: 6, low: 4, close: 5, volume: 10, trades: 3 });
    const writerQ = await eventually(async () => {
      const q = quarantined.filter((x) => x.source === 'writer');
      return q.length >= 3 ? q : null;
    }, 'three bars quarantined by the writer');
    // (Content checks happen on arrival, the symbol check when the batch is written.)
    expect(writerQ.map((q) => q.reason).sort()).toEqual([
      `misaligned: t ${T + 30_000} is not a 1m bucket start`,
      `subject mismatch: content names ${EX}/${OTHER} 1m, subject is ${subjects.bar('1m', EX, SYM)}`,
      `unknown symbol: ${EX}/GHOST/USDT is not in symbols`,
    ]);
    expect(writerQ.find((q) => q.reason.startsWith('unknown'))!.payload).toEqual({
      subject: subjects.bar('1m', EX, 'GHOST/USDT'),
      ex: EX,
      sym: 'GHOST/USDT',
      tf: '1m',
      t: T,
    });
    const { rows } = await sys.db.pool.query(
      `SELECT exchange, symbol, (extract(epoch FROM ts) * 1000)::float8 AS t FROM candles
        WHERE exchange = $1 AND ts >= to_timestamp($2 / 1000.0) ORDER BY symbol, ts`,
      [EX, T],
    );
    expect(rows).toEqual([{ exchange: EX, symbol: OTHER, t: T + MIN }]);
    expect({
      mismatch:
        (await counted(metrics.quarantined, { source: 'writer', reason: 'subject mismatch' })) -
        writerBefore.mismatch,
      unknown:
        (await counted(metrics.quarantined, { source: 'writer', reason: 'unknown symbol' })) -
        writerBefore.unknown,
      misaligned:
        (await counted(metrics.quarantined, { source: 'writer', reason: 'misaligned' })) -
        writerBefore.misaligned,
    }).toEqual({ mismatch: 1, unknown: 1, misaligned: 1 });
    // Every message was acknowledged: nothing waits for redelivery.
    await eventually(async () => {
      const info = await topo.jsm.consumers.info(STREAMS.bars, 'writer_bars');
      return info.num_ack_pending === 0 && info.num_pending === 0;
    }, 'writer consumer drained');
  });
});
