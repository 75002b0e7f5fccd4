/**
 * The ccxt exchange actor under load, against a fake Binance in a child process of its own
 * (test/fakes/fake-binance-process.ts: real aggTrade frames, pre-encoded, many per write).
 *
 * 1. throughput: one CcxtExchangeActor (ccxt's own websocket and parsing code, the feed, the
 *    TradePublisher) taking trades as fast as the fake's socket delivers them, trades/s acked by
 *    JetStream; then the exact payloads it stored are published again directly (same ids, same
 *    window of publishes in flight) for the raw JetStream ceiling of the same run. With
 *    `profile`, a CPU profile of the window says where the actor's time goes.
 * 2. repair: the whole system (supervisor, worker with symbol actors and writer) on a steady
 *    feed; the fake drops its sockets while trading goes on; the time from the reconnect (and
 *    from the drop) until the symbol actors have applied every trade of the outage, over a few
 *    repetitions; at the end the stored 1m bars are compared with the bars of every trade.
 * 3. rss: the actor alone at a steady high rate for `minutes`, RSS and heap sampled; the slope
 *    after warm-up, and the live heap after full GCs (leak check).
 *
 *   npx tsx bench/exchange.ts [--quick] [--only throughput,repair,rss] [--minutes N] [--profile]
 */
import { Session } from 'node:inspector/promises';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import ccxt from 'ccxt';
import type { CcxtExchange } from '../actors/exchange/ccxt/index.ts';
import { CcxtExchangeActor } from '../actors/exchange/ccxt-actor.ts';
import type { ExchangeAdapters } from '../actors/factory.ts';
import type { ActorContext } from '../actors/runtime/actor.ts';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import { systemClock } from '../core/clock.ts';
import { parseExchangesFile, syncExchanges } from '../core/exchanges-config.ts';
import { metrics } from '../core/metrics.ts';
import type { Topology } from '../core/nats.ts';
import {
  actorIds,
  bucketStart,
  encodeJson,
  msgIds,
  STREAMS,
  subjectFilters,
  subjects,
  type Trade,
  type TradeBatch,
} from '../core/protocol/index.ts';
import { type RoleHandle, startSupervisorRole, startWorkerRole } from '../launcher/roles.ts';
import { pointAtFakeBinance } from '../test/fakes/fake-binance.ts';
import {
  type FakeBinanceProcess,
  type FakeStatus,
  spawnFakeBinance,
} from '../test/fakes/fake-binance-process.ts';
import { sameBar, storedBars } from '../test/support/bars.ts';
import type { CeilingResult } from './ceiling.ts';
import { publishAll } from './ceiling.ts';
import {
  type BenchEnv,
  benchConfig,
  createBenchDb,
  liveHeapMb,
  log,
  metricSum,
  nowMs,
  openTopology,
  progress,
  sleep,
  startBenchNats,
  waitFor,
  waitForActors,
  withTimeout,
} from './infra.ts';
import {
  fmtInt,
  fmtMs,
  fmtPct,
  fmtRate,
  printReport,
  row,
  type Summary,
  summarize,
  type TableRow,
  verdict,
} from './report.ts';
import { type LiveHeapCheck, liveHeapCheck, type RssTrend, rssTrend } from './rss.ts';
import type { EncodedBatch } from './workload.ts';

const MB = 1024 * 1024;
const SYMBOLS = ['BTC/USDT', 'ETH/USDT', 'XRP/USDT'];

export const EXCHANGE_TARGETS = {
  tradesPerSec: 50_000,
  pctOfCeiling: 80,
  repairP50Ms: 5000,
  repairMaxMs: 5000,
  flatMbPerMin: 1,
} as const;

export type ExchangeSection = 'throughput' | 'repair' | 'rss';
export const EXCHANGE_SECTIONS: readonly ExchangeSection[] = ['throughput', 'repair', 'rss'];

export interface ExchangeBenchOptions {
  quick?: boolean;
  sections?: readonly ExchangeSection[];
  /** Length of the RSS run (default 10, quick 1). */
  minutes?: number;
  /** CPU profile of the throughput window. */
  profile?: boolean;
  symbols?: string[];
}

export interface ProfileSummary {
  /** Share of sampled time by where the code lives (ccxt, ws, nats, tickmesh, node, gc, idle…). */
  byArea: { area: string; pct: number }[];
  /** Functions with the most self time. */
  top: { fn: string; where: string; pct: number }[];
}

export interface ThroughputResult {
  seconds: number;
  trades: number;
  tradesPerSec: number;
  messages: number;
  avgTradesPerMessage: number;
  /** What the fake had sent when the window ended, minus what was acked. */
  backlogAtEnd: number;
  ceiling: { tradesPerSec: number; msgsPerSec: number; seconds: number };
  pctOfCeiling: number;
  /**
   * Raw JetStream publish of the same trades one message each, as the exchange sends them (one
   * aggTrade per frame): what a publisher that does not batch could reach.
   */
  perTradeCeiling: { tradesPerSec: number; trades: number; seconds: number };
  /** ccxt by itself on the same firehose (watchTradesForSymbols, trades counted, nothing else). */
  ccxtAlone: { tradesPerSec: number; seconds: number };
  rssMb: number;
  profile?: ProfileSummary;
}

export interface RepairSample {
  /** Reconnect (new subscription at the fake) → every outage trade applied by the symbol actors. */
  fromReconnectMs: number;
  /** Socket dropped → every outage trade applied. */
  fromDropMs: number;
  /** Trades the outage left to REST. */
  outageTrades: number;
}

export interface RepairResult {
  ratePerSec: number;
  /** How long the fake refused new connections after each drop. */
  outageMs: number;
  samples: RepairSample[];
  fromReconnect: Summary;
  fromDrop: Summary;
  bars: { compared: number; mismatches: number; trades: number };
  /** TRADES against the fake's tape: every trade once, no gap mark. */
  stream: { stored: number; duplicates: number; missing: number; gapMarks: number };
  restarts: number;
}

export interface ExchangeRssResult extends RssTrend {
  minutes: number;
  ratePerSec: number;
  publishedPerSec: number;
  warmupSec: number;
  samples: { tSec: number; rssMb: number; heapUsedMb: number }[];
  liveHeap: LiveHeapCheck;
  /** Full (mark-compact) collections after warm-up: with fewer than two the slope is a sawtooth edge. */
  majorGcs: number;
}

export interface ExchangeBenchResult {
  throughput?: ThroughputResult;
  repair?: RepairResult;
  rss?: ExchangeRssResult;
  errors: { section: ExchangeSection; message: string }[];
}

// ---------------------------------------------------------------- the actor on its own

interface RunningActor {
  detail: Record<string, unknown>;
  processed(): number;
  stop(): Promise<void>;
}

/** One CcxtExchangeActor outside any worker (no symbol actors competing for the CPU). */
async function runActorAlone(
  topo: Topology,
  ex: string,
  symbols: string[],
  fake: FakeBinanceProcess,
): Promise<RunningActor> {
  const actor = new CcxtExchangeActor(
    ex,
    symbols,
    { ccxt: { id: 'binance' } },
    { topo, ccxt: { configure: (e) => pointAtFakeBinance(e, fake.restUrl, fake.wsUrl) } },
  );
  const abort = new AbortController();
  const detail: Record<string, unknown> = {};
  let processed = 0;
  let ready: () => void = () => {};
  const started = new Promise<void>((r) => {
    ready = r;
  });
  const ctx: ActorContext = {
    id: actorIds.exchange(ex),
    sessionId: 'bench',
    spec: { id: actorIds.exchange(ex), kind: 'exchange', exchange: ex, exchangeKind: 'ccxt', symbols },
    signal: abort.signal,
    clock: systemClock,
    log: log.child({ actor: actorIds.exchange(ex) }),
    markEvent: (n = 1) => {
      processed += n;
    },
    setDetail: (d) => Object.assign(detail, d),
    ready: () => ready(),
  };
  const running = actor.run(ctx);
  await Promise.race([started, running]);
  return {
    detail,
    processed: () => processed,
    async stop() {
      abort.abort();
      await withTimeout(running, 30_000, 'stopping the ccxt actor');
    },
  };
}

const published = (ex: string) => metricSum(metrics.tradesPublished, { exchange: ex });
const total = (r: Record<string, number>) => Object.values(r).reduce((s, n) => s + n, 0);

async function waitSubscribed(fake: FakeBinanceProcess, after = 0): Promise<FakeStatus> {
  return waitFor(
    async () => {
      const s = await fake.request({ cmd: 'status' });
      return s.subscribers > 0 && (s.subscribedAt ?? 0) > after ? s : null;
    },
    'the actor subscribed at the fake',
    30_000,
  );
}

/** The stored messages of `filter` in TRADES, as publishable batches (data + Nats-Msg-Id). */
async function storedBatches(topo: Topology, filter: string): Promise<EncodedBatch[]> {
  const info = await topo.jsm.streams.info(STREAMS.trades, { subjects_filter: filter });
  const want = Object.values(info.state.subjects ?? {}).reduce((s, n) => s + n, 0);
  const out: EncodedBatch[] = [];
  if (want === 0) return out;
  const consumer = await topo.js.consumers.get(STREAMS.trades, { filter_subjects: filter });
  const messages = await consumer.consume({ max_messages: 1000 });
  for await (const m of messages) {
    const text = new TextDecoder().decode(m.data);
    const trades = (text.match(/"id":/g) ?? []).length;
    out.push({
      sym: m.subject,
      subject: m.subject,
      msgId: m.headers?.get('Nats-Msg-Id') ?? `${m.seq}`,
      data: m.data,
      trades,
    });
    if (out.length >= want) break;
  }
  await messages.close();
  return out;
}

/** The same payloads published straight to a scratch stream, as many in flight as the publisher keeps. */
async function rawCeiling(env: BenchEnv, batches: EncodedBatch[], window: number) {
  const t0 = await scratchStream(env);
  await publishAll(env.topo.js, batches, window, (b) => b.subject.replace(/^md\.trade\./, 'bench.exceil.'));
  const seconds = (nowMs() - t0) / 1000;
  await env.topo.jsm.streams.delete(SCRATCH).catch(() => false);
  const trades = batches.reduce((s, b) => s + b.trades, 0);
  return { tradesPerSec: trades / seconds, msgsPerSec: batches.length / seconds, seconds };
}

/** The first `limit` stored trades published again one message each (same window in flight). */
async function perTradeCeiling(env: BenchEnv, batches: EncodedBatch[], window: number, limit: number) {
  const single: EncodedBatch[] = [];
  for (const b of batches) {
    const batch = JSON.parse(new TextDecoder().decode(b.data)) as TradeBatch;
    for (const t of batch.trades) {
      if (single.length >= limit) break;
      single.push({
        sym: batch.sym,
        subject: b.subject,
        msgId: msgIds.trades(batch.ex, batch.sym, t.id, t.id),
        data: encodeJson({ ...batch, trades: [t] }),
        trades: 1,
      });
    }
  }
  const t0 = await scratchStream(env);
  await publishAll(env.topo.js, single, window, (b) => b.subject.replace(/^md\.trade\./, 'bench.exceil.'));
  const seconds = (nowMs() - t0) / 1000;
  await env.topo.jsm.streams.delete(SCRATCH).catch(() => false);
  return { tradesPerSec: single.length / seconds, trades: single.length, seconds };
}

const SCRATCH = 'BENCH_EXCEIL';

/** A fresh scratch stream for the ceilings; returns the time it was ready. */
async function scratchStream(env: BenchEnv): Promise<number> {
  const stream = SCRATCH;
  const { jsm } = env.topo;
  await jsm.streams.delete(stream).catch(() => false);
  await jsm.streams.add({
    name: stream,
    subjects: ['bench.exceil.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(5 * 60_000),
  });
  return nowMs();
}

// ---------------------------------------------------------------- CPU profile

async function profiled<T>(
  on: boolean,
  fn: () => Promise<T>,
): Promise<{ value: T; profile?: ProfileSummary }> {
  if (!on) return { value: await fn() };
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  try {
    const value = await fn();
    const { profile } = await session.post('Profiler.stop');
    return { value, profile: summarizeProfile(profile as unknown as CpuProfile) };
  } finally {
    session.disconnect();
  }
}

interface CpuProfile {
  nodes: {
    id: number;
    hitCount?: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
}

function areaOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'node (native)';
  if (url.includes('/node_modules/ccxt/')) return 'ccxt';
  if (url.includes('/node_modules/ws/')) return 'ws';
  if (url.includes('/node_modules/@nats-io/')) return 'nats.js';
  if (url.includes('/node_modules/cockatiel/')) return 'cockatiel';
  if (url.includes('/node_modules/prom-client/')) return 'prom-client';
  if (url.includes('/node_modules/')) return 'other packages';
  if (url.startsWith('node:') || url === '') return 'node (js)';
  return 'tickmesh';
}

function summarizeProfile(p: CpuProfile): ProfileSummary {
  const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
  const areas = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; hits: number }>();
  for (const n of p.nodes) {
    const h = n.hitCount ?? 0;
    if (h === 0) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + h);
    const file = url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/main\//, '');
    const key = `${functionName}@${file}:${lineNumber}`;
    const e = fns.get(key) ?? {
      fn: functionName || '(anonymous)',
      where: `${file}:${lineNumber + 1}`,
      hits: 0,
    };
    e.hits += h;
    fns.set(key, e);
  }
  return {
    byArea: [...areas].map(([area, h]) => ({ area, pct: (100 * h) / hits })).sort((a, b) => b.pct - a.pct),
    top: [...fns.values()]
      .sort((a, b) => b.hits - a.hits)
      .slice(0, 15)
      .map((e) => ({ fn: e.fn, where: e.where, pct: (100 * e.hits) / hits })),
  };
}

// ---------------------------------------------------------------- 1. throughput

/**
 * The parsing ceiling: ccxt's own websocket client on the same firehose, doing nothing but
 * watching and counting new trades (read from its caches, as the feed reads them).
 */
async function ccxtAlone(symbols: string[], warmupSec: number, seconds: number) {
  const fake = await spawnFakeBinance();
  const registry = ccxt as unknown as { pro: Record<string, new (cfg: object) => CcxtExchange> };
  const ex = new registry.pro.binance!({
    enableRateLimit: true,
    options: { watchTradesForSymbols: { name: 'aggTrade' } },
  });
  pointAtFakeBinance(ex, fake.restUrl, fake.wsUrl);
  let count = 0;
  let stop = false;
  const lastSeen = new Map<string, unknown>();
  const loop = (async () => {
    await ex.loadMarkets();
    while (!stop) {
      await ex.watchTradesForSymbols!(symbols);
      for (const s of symbols) {
        const cache = ex.trades?.[s];
        if (!cache || cache.length === 0) continue;
        let i = cache.length - 1;
        while (i >= 0 && cache[i] !== lastSeen.get(s)) i--;
        count += cache.length - 1 - i;
        lastSeen.set(s, cache[cache.length - 1]);
      }
    }
  })();
  try {
    await waitSubscribed(fake);
    await fake.request({ cmd: 'firehose', symbols, ratePerSec: 'max' });
    await sleep(warmupSec * 1000);
    const c0 = count;
    const t0 = nowMs();
    await sleep(seconds * 1000);
    const elapsed = (nowMs() - t0) / 1000;
    return { tradesPerSec: (count - c0) / elapsed, seconds: elapsed };
  } finally {
    stop = true;
    await fake.request({ cmd: 'stop' }).catch(() => {});
    await ex.close().catch(() => {});
    await Promise.race([loop.catch(() => {}), sleep(2000)]);
    await fake.close();
  }
}

async function runThroughput(
  env: BenchEnv,
  o: { symbols: string[]; warmupSec: number; seconds: number; profile: boolean; quick: boolean },
): Promise<ThroughputResult> {
  const ex = 'benchccxt';
  const fake = await spawnFakeBinance();
  const topo = await openTopology(env.nats);
  let actor: RunningActor | null = null;
  try {
    actor = await runActorAlone(topo, ex, o.symbols, fake);
    await waitSubscribed(fake);
    const before = await published(ex);
    await fake.request({ cmd: 'firehose', symbols: o.symbols, ratePerSec: 'max' });
    progress('ccxt throughput', `firehose on (max rate); warm-up ${o.warmupSec} s, then ${o.seconds} s`);
    await sleep(o.warmupSec * 1000);
    const { value: window, profile } = await profiled(o.profile, async () => {
      const p0 = await published(ex);
      const t0 = nowMs();
      for (let left = o.seconds; left > 0; left -= 5) {
        await sleep(Math.min(5, left) * 1000);
        progress('ccxt throughput', `acked ${fmtInt((await published(ex)) - p0)} trades`);
      }
      const p1 = await published(ex);
      const t1 = nowMs();
      const sent = total((await fake.request({ cmd: 'status' })).emitted);
      return { trades: p1 - p0, seconds: (t1 - t0) / 1000, backlog: sent - (p1 - before) };
    });
    const rssMb = process.memoryUsage().rss / MB;
    const end = await fake.request({ cmd: 'stop' });
    const emitted = total(end.emitted);
    progress('ccxt throughput', `firehose off after ${fmtInt(emitted)} trades; draining`);
    await waitFor(async () => (await published(ex)) - before >= emitted, 'every trade acked', 120_000, 100);
    await actor.stop();
    actor = null;
    const batches = await storedBatches(env.topo, subjectFilters.tradesOf(ex));
    const stored = batches.reduce((s, b) => s + b.trades, 0);
    if (stored !== emitted) throw new Error(`TRADES holds ${stored} trades of ${emitted} sent`);
    progress('ccxt throughput', `raw ceiling: the ${fmtInt(batches.length)} stored payloads published again`);
    const ceiling = await rawCeiling(env, batches, 256);
    const single = Math.min(stored, o.quick ? 100_000 : 300_000);
    progress('ccxt throughput', `raw ceiling: ${fmtInt(single)} of those trades published one message each`);
    const perTrade = await perTradeCeiling(env, batches, 256, single);
    progress('ccxt throughput', 'ccxt alone on the same firehose (parsing ceiling)');
    const alone = await ccxtAlone(o.symbols, o.warmupSec, o.seconds);
    const tradesPerSec = window.trades / window.seconds;
    return {
      seconds: window.seconds,
      trades: window.trades,
      tradesPerSec,
      messages: batches.length,
      avgTradesPerMessage: stored / batches.length,
      backlogAtEnd: window.backlog,
      ceiling,
      pctOfCeiling: (100 * tradesPerSec) / ceiling.tradesPerSec,
      perTradeCeiling: perTrade,
      ccxtAlone: alone,
      rssMb,
      ...(profile ? { profile } : {}),
    };
  } finally {
    await actor?.stop().catch(() => {});
    await topo.jsm.streams.purge(STREAMS.trades, { filter: subjectFilters.tradesOf(ex) }).catch(() => {});
    await topo.nc.close().catch(() => {});
    await fake.close();
  }
}

// ---------------------------------------------------------------- 2. repair after a reconnect

async function runRepair(
  env: BenchEnv,
  o: { symbols: string[]; ratePerSec: number; repetitions: number; warmupSec: number; outageMs: number },
): Promise<RepairResult> {
  const ex = 'benchccxtr';
  const fake = await spawnFakeBinance();
  const cfg = benchConfig(env);
  const roles: RoleHandle[] = [];
  const adapters: ExchangeAdapters = {
    ccxt: { configure: (e) => pointAtFakeBinance(e, fake.restUrl, fake.wsUrl) },
  };
  const applied = async () => {
    const out: Record<string, number> = {};
    for (const s of o.symbols) out[s] = await metricSum(metrics.tradesIn, { exchange: ex, symbol: s });
    return out;
  };
  const reached = (have: Record<string, number>, want: Record<string, number>) =>
    o.symbols.every((s) => (have[s] ?? 0) >= (want[s] ?? 0));
  try {
    await syncExchanges(
      env.db.pool,
      parseExchangesFile(
        JSON.stringify({
          exchanges: { [ex]: { kind: 'ccxt', symbols: o.symbols, ccxt: { id: 'binance' } } },
        }),
      ),
    );
    roles.push(await startSupervisorRole(cfg, log));
    roles.push(await startWorkerRole(cfg, log, undefined, 'bench-ccxt-w', adapters));
    await waitForActors(env.topo, ex, o.symbols);
    let sub = await waitSubscribed(fake);
    const base = await applied(); // 0 unless an earlier run in this process counted some
    const ofId = (ids: Record<string, number>) =>
      Object.fromEntries(o.symbols.map((s) => [s, (base[s] ?? 0) + (ids[s] ?? 0)]));
    await fake.request({ cmd: 'firehose', symbols: o.symbols, ratePerSec: o.ratePerSec });
    progress('ccxt repair', `${fmtInt(o.ratePerSec)} trades/s over ${o.symbols.length} symbols; warm-up`);
    await sleep(o.warmupSec * 1000);
    const samples: RepairSample[] = [];
    for (let i = 0; i < o.repetitions; i++) {
      // Caught up before the drop, so the time measured is the outage's alone.
      const now = await fake.request({ cmd: 'status' });
      await waitFor(async () => reached(await applied(), ofId(now.emitted)), 'caught up', 30_000);
      const tDrop = Date.now();
      if (o.outageMs > 0) await fake.request({ cmd: 'refuse', on: true });
      const atDrop = await fake.request({ cmd: 'drop' });
      if (o.outageMs > 0) {
        await sleep(o.outageMs);
        await fake.request({ cmd: 'refuse', on: false });
      }
      sub = await waitSubscribed(fake, sub.subscribedAt ?? 0);
      const want = ofId(sub.lastIdAtSubscribe);
      await waitFor(async () => reached(await applied(), want), 'outage applied', 60_000, 5);
      const tDone = Date.now();
      const sample: RepairSample = {
        fromReconnectMs: tDone - (sub.subscribedAt ?? tDrop),
        fromDropMs: tDone - tDrop,
        outageTrades: total(sub.lastIdAtSubscribe) - total(atDrop.emitted),
      };
      samples.push(sample);
      progress(
        'ccxt repair',
        `#${i + 1}: ${fmtInt(sample.outageTrades)} trades repaired; reconnect → applied ${fmtMs(sample.fromReconnectMs)}, drop → applied ${fmtMs(sample.fromDropMs)}`,
      );
      await sleep(1000);
    }
    // Trade on until the minute of the last outage has closed: the bars compared include repairs.
    const closes = bucketStart(Date.now(), '1m') + 60_000 + cfg.bars.graceMs + 1000;
    progress('ccxt repair', `trading on until ${new Date(closes).toISOString().slice(11, 19)} (bars close)`);
    await sleep(Math.max(0, closes - Date.now()));
    const end = await fake.request({ cmd: 'stop' });
    const allApplied = await waitFor(
      async () => reached(await applied(), ofId(end.emitted)),
      'everything applied',
      60_000,
    ).then(
      () => true,
      () => false,
    );
    const stream = await tradesIntegrity(env.topo, ex, o.symbols, end.emitted);
    if (!allApplied)
      throw new Error(
        `not every trade was applied: applied ${JSON.stringify(await applied())} of ${JSON.stringify(ofId(end.emitted))}; TRADES ${JSON.stringify(stream)}`,
      );
    const bars = await compareBars(env, fake, ex, o.symbols, cfg.bars.graceMs);
    const health = await env.topo.kv.health.get(actorIds.exchange(ex));
    const restarts = health?.operation === 'PUT' ? (health.json<{ restarts: number }>().restarts ?? 0) : -1;
    return {
      ratePerSec: o.ratePerSec,
      outageMs: o.outageMs,
      samples,
      fromReconnect: summarize(samples.map((s) => s.fromReconnectMs)),
      fromDrop: summarize(samples.map((s) => s.fromDropMs)),
      bars,
      stream,
      restarts,
    };
  } finally {
    await env.db.pool.query('DELETE FROM exchanges WHERE id = $1', [ex]).catch(() => {});
    for (const r of roles.reverse())
      await withTimeout(r.stop(), 30_000, `stopping the ${r.name} role`).catch((e) =>
        log.error({ err: e }, 'role stop failed'),
      );
    await env.topo.jsm.streams.purge(STREAMS.trades, { filter: subjectFilters.tradesOf(ex) }).catch(() => {});
    await fake.close();
  }
}

/** What TRADES holds for `ex` against the ids 1 … emitted of each symbol. */
async function tradesIntegrity(
  topo: Topology,
  ex: string,
  symbols: string[],
  emitted: Record<string, number>,
): Promise<RepairResult['stream']> {
  const out = { stored: 0, duplicates: 0, missing: 0, gapMarks: 0 };
  for (const sym of symbols) {
    const seen = new Set<number>();
    for (const b of await storedBatches(topo, subjects.trade(ex, sym))) {
      const msg = JSON.parse(new TextDecoder().decode(b.data)) as { trades?: { id: string }[] };
      if (!msg.trades) {
        out.gapMarks++;
        continue;
      }
      for (const t of msg.trades) {
        const id = Number(t.id);
        if (seen.has(id)) out.duplicates++;
        seen.add(id);
        out.stored++;
      }
    }
    for (let id = 1; id <= (emitted[sym] ?? 0); id++) if (!seen.has(id)) out.missing++;
  }
  return out;
}

/** Stored 1m bars of every bucket the last trade has closed vs barsFromTrades of the fake's trades. */
async function compareBars(
  env: BenchEnv,
  fake: FakeBinanceProcess,
  ex: string,
  symbols: string[],
  graceMs: number,
): Promise<RepairResult['bars']> {
  let compared = 0;
  let mismatches = 0;
  let trades = 0;
  for (const sym of symbols) {
    const rows = await fake.request<[number, number, number, number][]>({ cmd: 'trades', symbol: sym });
    const list: Trade[] = rows.map(([id, ts, px, qty]) => ({ id: String(id), ts, px, qty }));
    trades += list.length;
    if (list.length === 0) continue;
    if (Number(list[0]!.id) !== 1) throw new Error(`the fake no longer holds ${sym} from its first trade`);
    const closedBefore = Math.floor((list.at(-1)!.ts - graceMs) / 60_000) * 60_000;
    const want = barsFromTrades(ex, sym, '1m', list).filter((b) => b.t < closedBefore);
    const stored = await waitFor(
      async () => {
        const r = await storedBars(env.db.pool, '1m', ex, sym, closedBefore);
        return r.length >= want.length ? r : null;
      },
      `${sym} bars stored`,
      30_000,
      100,
    );
    compared += want.length;
    want.forEach((b, i) => {
      const r = stored[i];
      if (r === undefined || !sameBar(r, b, 1e-6)) mismatches++;
    });
    mismatches += Math.max(0, stored.length - want.length);
  }
  return { compared, mismatches, trades };
}

// ---------------------------------------------------------------- 3. RSS over a long run

async function runRss(
  env: BenchEnv,
  o: { symbols: string[]; minutes: number; ratePerSec: number; sampleSec: number },
): Promise<ExchangeRssResult> {
  const ex = 'benchccxtm';
  const filter = subjectFilters.tradesOf(ex);
  const fake = await spawnFakeBinance();
  const topo = await openTopology(env.nats);
  let actor: RunningActor | null = null;
  try {
    actor = await runActorAlone(topo, ex, o.symbols, fake);
    await waitSubscribed(fake);
    const p0 = await published(ex);
    await fake.request({ cmd: 'firehose', symbols: o.symbols, ratePerSec: o.ratePerSec, retain: 200_000 });
    const durationSec = o.minutes * 60;
    const warmupSec = Math.min(120, 0.2 * durationSec);
    progress(
      'ccxt rss',
      `${o.minutes} min at ${fmtInt(o.ratePerSec)} trades/s; sampling every ${o.sampleSec} s`,
    );
    const samples: ExchangeRssResult['samples'] = [];
    liveHeapMb(); // start from a collected heap (earlier sections ran in this process)
    const t0 = nowMs();
    let lastPurge = t0;
    let majorGcs = 0;
    const gcs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
        if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR && (nowMs() - t0) / 1000 >= warmupSec)
          majorGcs++;
      }
    });
    gcs.observe({ entryTypes: ['gc'] });
    for (let i = 0; ; i++) {
      const mem = process.memoryUsage();
      const s = { tSec: (nowMs() - t0) / 1000, rssMb: mem.rss / MB, heapUsedMb: mem.heapUsed / MB };
      samples.push(s);
      if (i % 6 === 0)
        progress(
          'ccxt rss',
          `t=${s.tSec.toFixed(0)} s rss ${s.rssMb.toFixed(1)} MB heap ${s.heapUsedMb.toFixed(1)} MB, acked ${fmtInt((await published(ex)) - p0)}`,
        );
      if (s.tSec >= durationSec - 0.5) break;
      // Keep the server's store small on long runs (nothing here reads the trades back).
      if (nowMs() - lastPurge > 30_000) {
        lastPurge = nowMs();
        await topo.jsm.streams.purge(STREAMS.trades, { filter }).catch(() => {});
      }
      await sleep(Math.max(0, t0 + (i + 1) * o.sampleSec * 1000 - nowMs()));
    }
    gcs.disconnect();
    const checkSec = Math.min(60, Math.max(15, durationSec / 5));
    progress('ccxt rss', `live-heap check: full GC, ${checkSec} s more load, full GC`);
    const liveHeap = await liveHeapCheck(checkSec);
    const p1 = await published(ex);
    const seconds = (nowMs() - t0) / 1000;
    await fake.request({ cmd: 'stop' });
    return {
      minutes: o.minutes,
      ratePerSec: o.ratePerSec,
      publishedPerSec: (p1 - p0) / seconds,
      warmupSec,
      samples,
      ...rssTrend(samples, warmupSec, EXCHANGE_TARGETS.flatMbPerMin),
      liveHeap,
      majorGcs,
    };
  } finally {
    await actor?.stop().catch(() => {});
    await topo.jsm.streams.purge(STREAMS.trades, { filter }).catch(() => {});
    await topo.nc.close().catch(() => {});
    await fake.close();
  }
}

// ---------------------------------------------------------------- entry points

export async function runExchangeBench(
  env: BenchEnv,
  opts: ExchangeBenchOptions = {},
): Promise<ExchangeBenchResult> {
  const quick = opts.quick ?? false;
  const symbols = opts.symbols ?? SYMBOLS;
  const sections = opts.sections ?? EXCHANGE_SECTIONS;
  const result: ExchangeBenchResult = { errors: [] };
  const attempt = async (section: ExchangeSection, fn: () => Promise<void>) => {
    if (!sections.includes(section)) return;
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      result.errors.push({ section, message: (e as Error).stack ?? String(e) });
      progress(`ccxt ${section}`, `failed: ${(e as Error).stack ?? e}`);
    }
    progress(`ccxt ${section}`, `done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  };
  await attempt('throughput', async () => {
    result.throughput = await runThroughput(env, {
      symbols,
      warmupSec: quick ? 3 : 5,
      seconds: quick ? 10 : 30,
      profile: opts.profile ?? false,
      quick,
    });
  });
  await attempt('repair', async () => {
    result.repair = await runRepair(env, {
      symbols,
      ratePerSec: 5000,
      repetitions: quick ? 3 : 10,
      warmupSec: quick ? 3 : 5,
      outageMs: 1000,
    });
  });
  await attempt('rss', async () => {
    result.rss = await runRss(env, {
      symbols,
      minutes: opts.minutes ?? (quick ? 1 : 10),
      ratePerSec: 20_000,
      sampleSec: quick ? 2 : 5,
    });
  });
  return result;
}

/** Rows of the comparison table; `ceiling` (the run's own ceiling section) adds context only. */
export function exchangeRows(r: ExchangeBenchResult, ceiling: CeilingResult | null): TableRow[] {
  const rows: TableRow[] = [];
  const t = r.throughput;
  if (t) {
    const okRate = t.tradesPerSec >= EXCHANGE_TARGETS.tradesPerSec;
    const okPct = t.pctOfCeiling >= EXCHANGE_TARGETS.pctOfCeiling;
    const failed = [okRate ? '' : 'rate', okPct ? '' : '% of ceiling'].filter(Boolean).join(', ');
    rows.push(
      row({
        metric: `ccxt exchange actor: fake Binance ws → JetStream (${fmtInt(t.trades)} trades, ${t.avgTradesPerMessage.toFixed(0)}/msg)`,
        ours: `${fmtRate(t.tradesPerSec, ' trades/s')} (backlog ${fmtInt(t.backlogAtEnd)})`,
        ceiling: `${fmtRate(t.ceiling.tradesPerSec, ' trades/s')} (same payloads, raw publish)`,
        pct: fmtPct(t.tradesPerSec, t.ceiling.tradesPerSec),
        target: `≥ ${fmtInt(EXCHANGE_TARGETS.tradesPerSec)}/s and ≥ ${EXCHANGE_TARGETS.pctOfCeiling} %`,
        verdict: okRate && okPct ? 'pass' : `FAIL (${failed})`,
      }),
    );
    rows.push(
      row({
        metric: 'ccxt actor vs raw JetStream publish of one message per trade (as the exchange sends them)',
        ours: fmtRate(t.tradesPerSec, ' trades/s'),
        ceiling: `${fmtRate(t.perTradeCeiling.tradesPerSec, ' trades/s')} (${fmtInt(t.perTradeCeiling.trades)} trades)`,
        pct: fmtPct(t.tradesPerSec, t.perTradeCeiling.tradesPerSec),
      }),
    );
    rows.push(
      row({
        metric: 'ccxt actor vs ccxt alone on the same firehose (parsing ceiling)',
        ours: fmtRate(t.tradesPerSec, ' trades/s'),
        ceiling: `${fmtRate(t.ccxtAlone.tradesPerSec, ' trades/s')} (ccxt watch loop only)`,
        pct: fmtPct(t.tradesPerSec, t.ccxtAlone.tradesPerSec),
      }),
    );
    if (ceiling)
      rows.push(
        row({
          metric: 'ccxt actor vs JetStream publish-only ceiling (workload B=200)',
          ours: fmtRate(t.tradesPerSec, ' trades/s'),
          ceiling: fmtRate(ceiling.publishOnly.tradesPerSec, ' trades/s'),
          pct: fmtPct(t.tradesPerSec, ceiling.publishOnly.tradesPerSec),
        }),
      );
    if (t.profile) {
      const areas = t.profile.byArea
        .filter((a) => a.pct >= 2)
        .map((a) => `${a.area} ${a.pct.toFixed(0)} %`)
        .join(', ');
      rows.push(row({ metric: 'ccxt actor CPU profile (self time by area)', ours: areas }));
    }
  }
  const p = r.repair;
  if (p) {
    rows.push(
      row({
        metric: `ccxt reconnect → outage trades applied (${p.samples.length} drops, ${fmtMs(p.outageMs)} down, ${fmtInt(p.ratePerSec)} trades/s)`,
        ours: `p50 ${fmtMs(p.fromReconnect.p50)}, max ${fmtMs(p.fromReconnect.max)} (from the drop: p50 ${fmtMs(p.fromDrop.p50)}, max ${fmtMs(p.fromDrop.max)})`,
        target: `p50 and max ≤ ${fmtMs(EXCHANGE_TARGETS.repairMaxMs)}`,
        verdict: verdict(
          p.samples.length > 0 &&
            p.fromReconnect.p50 <= EXCHANGE_TARGETS.repairP50Ms &&
            p.fromReconnect.max <= EXCHANGE_TARGETS.repairMaxMs,
        ),
      }),
      row({
        metric: 'ccxt repair correctness: stored 1m bars vs barsFromTrades, actor restarts',
        ours: `${p.bars.compared - p.bars.mismatches}/${p.bars.compared} bars equal (${fmtInt(p.bars.trades)} trades), ${p.restarts} restarts`,
        target: 'identical, no restart',
        verdict: verdict(p.bars.mismatches === 0 && p.bars.compared > 0 && p.restarts === 0),
      }),
      row({
        metric: 'ccxt repair: TRADES vs the exchange (every trade once)',
        ours: `${fmtInt(p.stream.stored)} stored, ${p.stream.duplicates} duplicates, ${p.stream.missing} missing, ${p.stream.gapMarks} gap marks`,
        target: '0 duplicates, 0 missing, 0 gap marks',
        verdict: verdict(p.stream.duplicates === 0 && p.stream.missing === 0 && p.stream.gapMarks === 0),
      }),
    );
  }
  const m = r.rss;
  if (m) {
    rows.push(
      row({
        metric: `ccxt actor RSS after warm-up → end (${m.minutes} min at ${fmtInt(m.ratePerSec)} trades/s, ${fmtRate(m.publishedPerSec, '/s')} acked)`,
        ours: `${m.rssAfterWarmupMb.toFixed(0)} MB → ${m.rssEndMb.toFixed(0)} MB`,
      }),
      row({
        metric: 'ccxt actor RSS slope after warm-up',
        ours: `${m.slopeMbPerMin.toFixed(2)} ± ${m.slopeStdErr.toFixed(2)} MB/min (heap ${m.heapSlopeMbPerMin.toFixed(2)}; ${m.majorGcs} full GCs)`,
        target: `flat (slope < ${EXCHANGE_TARGETS.flatMbPerMin} MB/min)`,
        verdict: m.flat
          ? 'pass (flat)'
          : m.majorGcs < 2 || m.slopeMbPerMin < 2 * m.slopeStdErr
            ? 'inconclusive (GC sawtooth; run longer)'
            : 'FAIL (growing)',
      }),
      row({
        metric: `ccxt actor live heap after full GC, ${m.liveHeap.seconds.toFixed(0)} s apart`,
        ours: `${m.liveHeap.startMb.toFixed(1)} MB → ${m.liveHeap.endMb.toFixed(1)} MB (${m.liveHeap.mbPerMin.toFixed(2)} MB/min)`,
        target: `flat (< ${EXCHANGE_TARGETS.flatMbPerMin} MB/min)`,
        verdict: m.liveHeap.mbPerMin < EXCHANGE_TARGETS.flatMbPerMin ? 'pass (flat)' : 'FAIL (growing)',
      }),
    );
  }
  for (const e of r.errors)
    rows.push(
      row({
        metric: `ccxt ${e.section}: error`,
        ours: e.message.split('\n')[0]!.slice(0, 80),
        verdict: 'ERROR',
      }),
    );
  return rows;
}

/** Notes for the printed report: where the actor's time went, when profiled. */
export function exchangeNotes(r: ExchangeBenchResult): string[] {
  const notes: string[] = [];
  const prof = r.throughput?.profile;
  if (prof) {
    notes.push(
      `ccxt actor profile, top self time: ${prof.top
        .slice(0, 12)
        .map((f) => `${f.fn} (${f.where}) ${f.pct.toFixed(1)} %`)
        .join('; ')}`,
    );
  }
  if (r.throughput)
    notes.push(
      `ccxt throughput: the fake runs in its own process (pre-encoded frames); the actor runs alone (no symbol actors); RSS at the end of the window ${r.throughput.rssMb.toFixed(0)} MB.`,
    );
  return notes;
}

// ---------------------------------------------------------------- standalone

async function main(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      minutes: { type: 'string' },
      profile: { type: 'boolean', default: false },
    },
  });
  const sections = (args.only ?? []).flatMap((s) => s.split(',')).filter(Boolean) as ExchangeSection[];
  for (const s of sections) if (!EXCHANGE_SECTIONS.includes(s)) throw new Error(`unknown section ${s}`);
  const nats = await startBenchNats();
  const db = await createBenchDb().catch(async (e) => {
    await nats.stop();
    throw e;
  });
  const env: BenchEnv = { nats, db, topo: await openTopology(nats) };
  try {
    const result = await runExchangeBench(env, {
      quick: args.quick,
      sections: sections.length > 0 ? sections : undefined,
      minutes: args.minutes === undefined ? undefined : Number(args.minutes),
      profile: args.profile,
    });
    printReport(exchangeRows(result, null), exchangeNotes(result));
    return result.errors.length > 0 ? 1 : 0;
  } finally {
    await env.topo.nc.close().catch(() => {});
    await db.drop().catch(() => {});
    await nats.stop().catch(() => {});
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`exchange bench failed: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
