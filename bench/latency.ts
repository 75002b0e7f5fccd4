/**
 * Section 3: latency at the GraphQL subscriber (gateway in this process, graphql-ws client).
 * (a) trade → forming bar: live trades at a steady rate; for each forming update,
 *     freshness = receive time − publish time of the newest batch it contains (its `close`),
 *     and per batch, visibility = publish → first forming update that contains it.
 * (b) bar end → closed bar: for each closed 1m bar, receive time − (open time + 60 s).
 * Run once per forming throttle; each run uses its own exchange so state never carries over.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { AckPolicy, type ConsumerMessages, StorageType } from '@nats-io/jetstream';
import type { Config } from '../core/config.ts';
import { decodeJson, encodeSymbol, type TradeBatch } from '../core/protocol/index.ts';
import {
  addExchange,
  type BenchEnv,
  benchConfig,
  nowMs,
  progress,
  removeExchange,
  sleep,
  startCluster,
  waitForActors,
} from './infra.ts';
import { LiveFeed, watchCandles } from './live.ts';
import { type Summary, summarize } from './report.ts';

export interface LatencyRun {
  formingThrottleMs: number;
  graceMs: number;
  ratePerSec: number;
  seconds: number;
  /** Newest trade in each forming update: receive − publish. */
  freshness: Summary;
  /** Each published batch: publish → first forming update containing it. */
  visibility: Summary;
  /** Closed 1m bars: receive − bar end. */
  closed: Summary;
  /** JetStream publish → ack of the live batches (ms): the store's share of the latency. */
  publishAck: Summary;
  /** The slowest publish acks (seconds since recording started, ms). */
  worstAcks: { atSec: number; ms: number }[];
  /** Event-loop delay of this process while recording (ms). */
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** The slowest forming updates (seconds since recording started, latency ms). */
  worstForming: { atSec: number; ms: number }[];
  formingUpdatesPerSec: number;
  unmatched: number;
  publishErrors: number;
  subscriptionErrors: number;
}

export interface LatencyOptions {
  symbols: string[];
  ratePerSec: number;
  graceMs: number;
  warmupMs: number;
  /** Closed bars each symbol must deliver (minute boundaries) in the first run; 0: none. */
  boundaries: number;
  /** Length of a run that does not wait for boundaries. */
  seconds: number;
}

/** The 20 largest samples, with their time since `t0` in seconds. */
function worst(samples: readonly { at: number; ms: number }[], t0: number) {
  return [...samples]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 20)
    .map((s) => ({ atSec: Math.round((s.at - t0) / 100) / 10, ms: Math.round(s.ms * 10) / 10 }));
}

async function runOnce(env: BenchEnv, cfg: Config, ex: string, o: LatencyOptions, boundaries: number) {
  const throttle = cfg.bars.formingThrottleMs;
  await addExchange(env.db.pool, ex, 'external', o.symbols);
  const cluster = await startCluster(cfg, true);
  try {
    await waitForActors(env.topo, ex, o.symbols);
    const feed = new LiveFeed(env.topo.js, ex, o.symbols, o.ratePerSec);
    const freshness: { at: number; ms: number }[] = [];
    const visibility: number[] = [];
    const closed: number[] = [];
    const closedPerSymbol = new Map<string, number>(o.symbols.map((s) => [s, 0]));
    let recording = false;
    let forming = 0;
    let unmatched = 0;
    const watch = await watchCandles(cluster.gatewayUrl!, ex, o.symbols, (sym, c, at) => {
      if (c.closed) {
        closed.push(at - (c.timeMs + 60_000));
        closedPerSymbol.set(sym, (closedPerSymbol.get(sym) ?? 0) + 1);
        return;
      }
      const sent = feed.sentAt(c.close);
      const seen = feed.visible(sym, c.close, at);
      if (!recording) return;
      forming++;
      if (sent === undefined) unmatched++;
      else freshness.push({ at, ms: at - sent });
      visibility.push(...seen);
    });
    feed.start();
    await sleep(o.warmupMs);
    recording = true;
    feed.recordAcks = true;
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const t0 = nowMs();
    const label = `throttle ${throttle} ms`;
    if (boundaries > 0) {
      progress('latency', `${label}: running until ${boundaries} minute boundaries have passed`);
      const deadline = t0 + (boundaries + 1) * 60_000 + 30_000;
      while (Math.min(...closedPerSymbol.values()) < boundaries && nowMs() < deadline) {
        await sleep(1000);
        if (Math.round((nowMs() - t0) / 1000) % 20 === 0)
          progress('latency', `${label}: ${closed.length} closed bars, ${forming} forming updates so far`);
      }
    } else {
      progress('latency', `${label}: ${o.seconds} s`);
      await sleep(o.seconds * 1000);
    }
    const seconds = (nowMs() - t0) / 1000;
    loop.disable();
    feed.stop();
    await sleep(300);
    await watch.close();
    const run: LatencyRun = {
      formingThrottleMs: throttle,
      graceMs: cfg.bars.graceMs,
      ratePerSec: o.ratePerSec,
      seconds,
      freshness: summarize(freshness.map((f) => f.ms)),
      visibility: summarize(visibility),
      closed: summarize(closed),
      publishAck: summarize(feed.acks.map((a) => a.ms)),
      worstAcks: worst(feed.acks, t0),
      worstForming: worst(freshness, t0),
      formingUpdatesPerSec: forming / seconds,
      eventLoopDelay: {
        p50: loop.percentile(50) / 1e6,
        p99: loop.percentile(99) / 1e6,
        max: loop.max / 1e6,
      },
      unmatched,
      publishErrors: feed.errors,
      subscriptionErrors: watch.errors.length,
    };
    progress(
      'latency',
      `${label}: forming p99 ${run.freshness.p99.toFixed(1)} ms (n=${run.freshness.n}), closed p99 ${run.closed.p99.toFixed(1)} ms (n=${run.closed.n})`,
    );
    return run;
  } finally {
    await removeExchange(env, cluster, ex);
    await cluster.stop();
  }
}

export interface RawLatency {
  seconds: number;
  /** Publish → delivery to a pull consumer on a scratch stream (ms). */
  delivery: Summary;
  publishAck: Summary;
  worst: { atSec: number; ms: number }[];
}

/**
 * The ceiling for (a): the same live load published to a scratch stream and read by one pull
 * consumer per symbol (consume(), ack each), with no tickmesh code in between.
 */
export async function rawJetStreamLatency(env: BenchEnv, o: LatencyOptions): Promise<RawLatency> {
  const { jsm, js } = env.topo;
  const stream = 'BENCH_LAT';
  await jsm.streams.delete(stream).catch(() => false);
  await jsm.streams.add({ name: stream, subjects: ['bench.lat.>'], storage: StorageType.File });
  const feed = new LiveFeed(js, 'raw', o.symbols, o.ratePerSec, {
    subjectOf: (sym) => `bench.lat.${encodeSymbol(sym)}`,
  });
  const samples: { at: number; ms: number }[] = [];
  let recording = false;
  const iters: ConsumerMessages[] = [];
  for (const [i, sym] of o.symbols.entries()) {
    await jsm.consumers.add(stream, {
      durable_name: `lat${i}`,
      filter_subject: `bench.lat.${encodeSymbol(sym)}`,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 20_000,
    });
    const msgs = await (await js.consumers.get(stream, `lat${i}`)).consume({ max_messages: 512 });
    iters.push(msgs);
    void (async () => {
      for await (const m of msgs) {
        const at = nowMs();
        m.ack();
        const decoded = decodeJson(m.data);
        const px = decoded.ok ? (decoded.value as TradeBatch).trades.at(-1)?.px : undefined;
        const sent = px === undefined ? undefined : feed.sentAt(px);
        if (recording && sent !== undefined) samples.push({ at, ms: at - sent });
      }
    })();
  }
  progress('latency', `raw JetStream publish → consumer: ${o.seconds} s`);
  feed.start();
  await sleep(o.warmupMs);
  recording = true;
  feed.recordAcks = true;
  const t0 = nowMs();
  await sleep(o.seconds * 1000);
  const seconds = (nowMs() - t0) / 1000;
  feed.stop();
  await sleep(300);
  for (const m of iters) m.stop();
  await jsm.streams.delete(stream);
  const delivery = summarize(samples.map((s) => s.ms));
  progress('latency', `raw JetStream: delivery p99 ${delivery.p99.toFixed(1)} ms (n=${delivery.n})`);
  return {
    seconds,
    delivery,
    publishAck: summarize(feed.acks.map((a) => a.ms)),
    worst: worst(samples, t0),
  };
}

/** The default forming throttle (with minute boundaries for closed bars), then throttle 0. */
export async function runLatency(
  env: BenchEnv,
  o: LatencyOptions,
): Promise<{ raw: RawLatency; runs: LatencyRun[] }> {
  const raw = await rawJetStreamLatency(env, o);
  const defaults = benchConfig(env);
  const runs: LatencyRun[] = [];
  for (const throttle of [defaults.bars.formingThrottleMs, 0]) {
    const cfg = benchConfig(env, { bars: { graceMs: o.graceMs, formingThrottleMs: throttle } });
    const first = runs.length === 0;
    runs.push(await runOnce(env, cfg, `lat${throttle}`, o, first ? o.boundaries : 0));
  }
  return { raw, runs };
}
