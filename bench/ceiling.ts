/**
 * Section 1: ceilings measured on this machine in this run, with no tickmesh code in the path.
 * - JetStream: the workload's exact TradeBatch payloads (and message ids) published to a scratch
 *   stream with many publishes in flight, consumed by one pull consumer per symbol (consume(),
 *   ack each) — the same consumer layout and settings the symbol actors use.
 * - core NATS publish/subscribe of the same payloads.
 * - PostgreSQL multi-row INSERT (unnest) and COPY into a candles-shaped table, next to the
 *   writer's own upsert (actors/writer/candle-store.ts).
 */
import { spawn } from 'node:child_process';
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { upsertBars } from '../actors/writer/candle-store.ts';
import { connectAs } from '../core/nats.ts';
import { type Bar, SCHEMA_VERSION } from '../core/protocol/index.ts';
import { type BenchEnv, benchConfig, nowMs, progress } from './infra.ts';
import { type EncodedBatch, Window, type Workload } from './workload.ts';

const STREAM = 'BENCH_CEIL';
const PREFIX = 'bench.ceil';

export interface JsResult {
  msgs: number;
  seconds: number;
  msgsPerSec: number;
  tradesPerSec: number;
}

export interface CeilingResult {
  combined: JsResult;
  publishOnly: JsResult;
  consumeOnly: JsResult;
  coreMsgsPerSec: number;
  pg: { rows: number; insertRowsPerSec: number; copyRowsPerSec: number; writerUpsertRowsPerSec: number };
}

const scratchSubject = (b: EncodedBatch) => b.subject.replace(/^md\.trade\./, `${PREFIX}.`);

function result(w: Workload, msgs: number, ms: number): JsResult {
  const seconds = ms / 1000;
  const trades = (msgs / w.batches.length) * w.totalTrades;
  return { msgs, seconds, msgsPerSec: msgs / seconds, tradesPerSec: trades / seconds };
}

export async function publishAll(
  js: JetStreamClient,
  batches: readonly EncodedBatch[],
  window: number,
  subjectOf: (b: EncodedBatch) => string = (b) => b.subject,
): Promise<number> {
  const w = new Window(window);
  let duplicates = 0;
  for (const b of batches)
    await w.run(() =>
      js.publish(subjectOf(b), b.data, { msgID: b.msgId }).then((ack) => {
        if (ack.duplicate) duplicates++;
      }),
    );
  await w.drain();
  return duplicates;
}

async function recreateStream(env: BenchEnv): Promise<void> {
  await env.topo.jsm.streams.delete(STREAM).catch(() => false);
  await env.topo.jsm.streams.add({
    name: STREAM,
    subjects: [`${PREFIX}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(5 * 60_000),
  });
}

/** One durable pull consumer per symbol, as the symbol actors configure theirs; resolves when all are read. */
async function consumeAll(env: BenchEnv, w: Workload): Promise<{ done: Promise<number>; stop(): void }> {
  const { jsm, js } = env.topo;
  const iters: ConsumerMessages[] = [];
  const finished: Promise<void>[] = [];
  for (const [i, sym] of w.symbols.entries()) {
    const mine = w.batches.filter((b) => b.sym === sym);
    const name = `bench_c${i}`;
    await jsm.consumers.add(STREAM, {
      durable_name: name,
      filter_subject: scratchSubject(mine[0]!),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(120_000),
      max_ack_pending: 20_000,
      deliver_policy: DeliverPolicy.All,
    });
    const msgs = await (await js.consumers.get(STREAM, name)).consume({ max_messages: 512 });
    iters.push(msgs);
    finished.push(
      (async () => {
        let n = 0;
        for await (const m of msgs) {
          m.ack();
          if (++n >= mine.length) return;
        }
      })(),
    );
  }
  return {
    done: Promise.all(finished).then(() => nowMs()),
    stop: () => {
      for (const m of iters) m.stop();
    },
  };
}

export async function jetStreamCeiling(env: BenchEnv, w: Workload, window: number) {
  const js = env.topo.js;
  const n = w.batches.length;
  // Publish only, then consume only what was stored: where the time goes on each side.
  await recreateStream(env);
  let t0 = nowMs();
  const dups = await publishAll(js, w.batches, window, scratchSubject);
  const publishOnly = result(w, n, nowMs() - t0);
  if (dups > 0) throw new Error(`ceiling: ${dups} publishes were deduplicated (ids not unique)`);
  progress('ceiling', `JetStream publish only: ${publishOnly.msgsPerSec.toFixed(0)} msgs/s`);
  t0 = nowMs();
  let c = await consumeAll(env, w);
  const consumeOnly = result(w, n, (await c.done) - t0);
  c.stop();
  progress('ceiling', `JetStream consume only: ${consumeOnly.msgsPerSec.toFixed(0)} msgs/s`);
  // Both at once, as the pipeline runs.
  await recreateStream(env);
  c = await consumeAll(env, w);
  t0 = nowMs();
  await publishAll(js, w.batches, window, scratchSubject);
  const combined = result(w, n, (await c.done) - t0);
  c.stop();
  const info = await env.topo.jsm.streams.info(STREAM);
  if (info.state.messages !== n) throw new Error(`ceiling: stream holds ${info.state.messages} of ${n}`);
  await env.topo.jsm.streams.delete(STREAM);
  progress('ceiling', `JetStream publish+consume: ${combined.msgsPerSec.toFixed(0)} msgs/s`);
  return { combined, publishOnly, consumeOnly };
}

export async function coreNatsCeiling(env: BenchEnv, w: Workload, passes: number): Promise<number> {
  const cfg = benchConfig(env);
  const pub = await connectAs(cfg, 'operator', 'bench-core-pub');
  const sub = await connectAs(cfg, 'operator', 'bench-core-sub');
  const total = w.batches.length * passes;
  let got = 0;
  let finish: (t: number) => void = () => {};
  const done = new Promise<number>((r) => {
    finish = r;
  });
  sub.subscribe('bench.core.>', {
    callback: () => {
      if (++got === total) finish(nowMs());
    },
  });
  await sub.flush();
  const t0 = nowMs();
  let i = 0;
  for (let p = 0; p < passes; p++)
    for (const b of w.batches) {
      pub.publish(b.subject.replace(/^md\.trade\./, 'bench.core.'), b.data);
      // Flushing now and then keeps the subscriber from being cut off as a slow consumer.
      if (++i % 256 === 0) await pub.flush();
    }
  await pub.flush();
  const timeout = new Promise<number>((r) => setTimeout(() => r(Number.NaN), 60_000));
  const end = await Promise.race([done, timeout]);
  await pub.close();
  await sub.close();
  if (Number.isNaN(end)) throw new Error(`core NATS ceiling: received ${got} of ${total}`);
  return total / ((end - t0) / 1000);
}

function syntheticBars(rows: number, ex: string): Bar[] {
  const base = Date.UTC(2024, 0, 1);
  return Array.from({ length: rows }, (_, i) => {
    const px = 100 + (i % 97);
    return {
      v: SCHEMA_VERSION,
      ex,
      sym: `S${i % 20}`,
      tf: '1m' as const,
      t: base + Math.floor(i / 20) * 60_000,
      o: px,
      h: px + 1,
      l: px - 1,
      c: px + 0.5,
      vol: 12.5,
      n: 1000,
      closed: true,
      rev: 0,
      gap: 0,
      ft: base,
      lt: base,
    };
  });
}

const COLS = `exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, gap, revision,
  first_trade_at, last_trade_at`;
const INSERT = `INSERT INTO bench_candles (${COLS})
SELECT ex, sym, tf, to_timestamp(t / 1000.0), o, h, l, cl, vol, n, gap, rev,
       to_timestamp(ft / 1000.0), to_timestamp(lt / 1000.0)
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::float8[], $9::float8[], $10::int[], $11::int[], $12::int[], $13::float8[], $14::float8[])
     AS u(ex, sym, tf, t, o, h, l, cl, vol, n, gap, rev, ft, lt)`;

const columnsOf = (bars: Bar[]) => {
  const keys = ['ex', 'sym', 'tf', 't', 'o', 'h', 'l', 'c', 'vol', 'n', 'gap', 'rev', 'ft', 'lt'] as const;
  return keys.map((k) => bars.map((b) => b[k]));
};

function psqlCopy(url: string, csv: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      'psql',
      [url, '-v', 'ON_ERROR_STOP=1', '-qc', `\\copy bench_candles (${COLS}) FROM STDIN CSV`],
      {
        stdio: ['pipe', 'ignore', 'pipe'],
      },
    );
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql \\copy failed: ${err}`))));
    p.stdin.end(csv);
  });
}

export async function postgresCeiling(env: BenchEnv, rows: number, batch = 1000) {
  const pool = env.db.pool;
  const bars = syntheticBars(rows, 'benchdb');
  await pool.query('CREATE TABLE bench_candles (LIKE candles INCLUDING ALL)');
  let t0 = nowMs();
  for (let i = 0; i < rows; i += batch) await pool.query(INSERT, columnsOf(bars.slice(i, i + batch)));
  const insertRowsPerSec = rows / ((nowMs() - t0) / 1000);
  await pool.query('TRUNCATE bench_candles');
  const iso = (ms: number) => new Date(ms).toISOString();
  const csv = bars
    .map((b) =>
      [b.ex, b.sym, b.tf, iso(b.t), b.o, b.h, b.l, b.c, b.vol, b.n, b.gap, b.rev, iso(b.ft), iso(b.lt)].join(
        ',',
      ),
    )
    .join('\n');
  t0 = nowMs();
  await psqlCopy(env.db.url, `${csv}\n`);
  const copyRowsPerSec = rows / ((nowMs() - t0) / 1000);
  const copied = await pool.query<{ n: number }>('SELECT count(*) AS n FROM bench_candles');
  if (copied.rows[0]?.n !== rows) throw new Error(`COPY stored ${copied.rows[0]?.n} of ${rows} rows`);
  await pool.query('DROP TABLE bench_candles');
  // The writer's own statement (upsert on the primary key), batch = writer.batchSize.
  t0 = nowMs();
  for (let i = 0; i < rows; i += batch) await upsertBars(pool, bars.slice(i, i + batch));
  const writerUpsertRowsPerSec = rows / ((nowMs() - t0) / 1000);
  await pool.query(`DELETE FROM candles WHERE exchange = 'benchdb'`);
  progress(
    'ceiling',
    `PostgreSQL rows/s: insert ${insertRowsPerSec.toFixed(0)}, COPY ${copyRowsPerSec.toFixed(0)}, writer upsert ${writerUpsertRowsPerSec.toFixed(0)}`,
  );
  return { rows, insertRowsPerSec, copyRowsPerSec, writerUpsertRowsPerSec };
}

export async function runCeiling(
  env: BenchEnv,
  w: Workload,
  o: { window: number; corePasses: number; pgRows: number },
): Promise<CeilingResult> {
  progress('ceiling', `${w.batches.length} messages × ${w.batchSize} trades, window ${o.window} in flight`);
  const js = await jetStreamCeiling(env, w, o.window);
  const coreMsgsPerSec = await coreNatsCeiling(env, w, o.corePasses);
  progress('ceiling', `core NATS publish+subscribe: ${coreMsgsPerSec.toFixed(0)} msgs/s`);
  const pg = await postgresCeiling(env, o.pgRows);
  return { ...js, coreMsgsPerSec, pg };
}
