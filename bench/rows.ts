/** Targets and verdicts: turns each section's result into rows of the printed table. */

import type { AnalyticsBenchDetail as AnalyticsBenchResult } from './analytics.ts';
import type { CeilingResult } from './ceiling.ts';
import type { FailoverResult, ScalingResult } from './distributed.ts';
import type { ExchangeBenchResult } from './exchange.ts';
import type { FanoutOptions, FanoutRun } from './fanout.ts';
import type { LatencyRun, RawLatency } from './latency.ts';
import type { PipelineResult } from './pipeline.ts';
import type { QualityOverheadResult } from './quality-overhead.ts';
import { fmtInt, fmtLatency, fmtMs, fmtPct, fmtRate, row, type TableRow, verdict } from './report.ts';
import { FLAT_MB_PER_MIN, type RssResult } from './rss.ts';
import type { SimResult } from './sim.ts';

export const SECTIONS = [
  'ceiling',
  'pipeline',
  'sim',
  'latency',
  'rss',
  'backlog',
  'failover',
  'scaling',
  'analytics',
  'quality',
  'exchange',
  'fanout',
] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  quick: boolean;
  sections: Section[];
  /** Publishes in flight (bench publisher, ceiling and pipeline alike). */
  window: number;
  tradesTotal: number;
  batchSize: number;
  tradesPerMs: number;
  pipelineGraceMs: number;
  pgRows: number;
  corePasses: number;
  sim: { ratePerSymbol: number; warmupSec: number; seconds: number };
  latency: { ratePerSec: number; graceMs: number; warmupMs: number; boundaries: number; seconds: number };
  rss: { minutes: number; ratePerSec: number; sampleSec: number };
  failover: { kills: number };
  scaling: { tradesPerSymbol: number };
  quality: { trades: number; rounds: number };
  exchange: { rssMinutes: number };
  fanout: FanoutOptions;
}

export interface Results {
  startedAt: string;
  finishedAt?: string;
  options: BenchOptions;
  machine: { cpus: number; cpuModel: string; memGb: number; node: string; natsServer: string };
  ceiling?: CeilingResult;
  pipeline?: PipelineResult;
  backlog?: PipelineResult;
  sim?: SimResult;
  latency?: { raw: RawLatency; runs: LatencyRun[] };
  rss?: RssResult;
  failover?: FailoverResult;
  scaling?: ScalingResult[];
  analytics?: AnalyticsBenchResult;
  quality?: QualityOverheadResult;
  exchange?: ExchangeBenchResult;
  fanout?: FanoutRun[];
  errors: { section: Section; message: string }[];
}

export const TARGETS = {
  pipelineTradesPerSec: 100_000,
  pipelinePctOfCeiling: 80,
  formingP99Ms: 25,
  closedOverGraceMs: 25,
  /** The simulator row keeps up when it applies at least this share of the configured rate. */
  simKeepUp: 0.95,
  failoverP50Ms: 5000,
  failoverMaxMs: 10_000,
  analyticsUsPerBar: 20,
  analyticsSpeedup: 1000,
} as const;

export function ceilingRows(c: CeilingResult, batchSize: number): TableRow[] {
  const js = (r: { msgsPerSec: number; tradesPerSec: number }) =>
    `${fmtRate(r.msgsPerSec, ' msg/s')} = ${fmtRate(r.tradesPerSec, ' trades/s')}`;
  const bestPg = Math.max(c.pg.insertRowsPerSec, c.pg.copyRowsPerSec);
  return [
    row({ metric: `ceiling: JetStream publish+consume (B=${batchSize})`, ceiling: js(c.combined) }),
    row({ metric: 'ceiling: JetStream publish only', ceiling: js(c.publishOnly) }),
    row({ metric: 'ceiling: JetStream consume only (stored)', ceiling: js(c.consumeOnly) }),
    row({
      metric: 'ceiling: core NATS publish+subscribe',
      ceiling: `${fmtRate(c.coreMsgsPerSec, ' msg/s')} = ${fmtRate(c.coreMsgsPerSec * batchSize, ' trades/s')}`,
    }),
    row({
      metric: 'ceiling: PostgreSQL multi-row INSERT',
      ceiling: fmtRate(c.pg.insertRowsPerSec, ' rows/s'),
    }),
    row({
      metric: 'ceiling: PostgreSQL COPY (psql \\copy)',
      ceiling: fmtRate(c.pg.copyRowsPerSec, ' rows/s'),
    }),
    row({
      metric: 'writer upsert (candle-store.ts), 1000-row batches',
      ours: fmtRate(c.pg.writerUpsertRowsPerSec, ' rows/s'),
      ceiling: fmtRate(bestPg, ' rows/s'),
      pct: fmtPct(c.pg.writerUpsertRowsPerSec, bestPg),
    }),
  ];
}

const correctness = (p: PipelineResult) =>
  p.mismatches.length === 0 && p.storedBars === p.expectedBars && p.quarantined === 0;
const summaryOf = (p: PipelineResult) =>
  `${p.mode}: ${p.storedBars}/${p.expectedBars} bars, ${p.mismatches.length} diffs, ${p.restarts} restarts`;

export function pipelineRows(p: PipelineResult, ceiling: CeilingResult | null): TableRow[] {
  const ceil = ceiling?.combined.tradesPerSec ?? Number.NaN;
  const pct = (100 * p.endToEndTradesPerSec) / ceil;
  const okRate = p.endToEndTradesPerSec >= TARGETS.pipelineTradesPerSec;
  const okPct = Number.isFinite(pct) && pct >= TARGETS.pipelinePctOfCeiling;
  const failed = [okRate ? '' : 'rate', okPct ? '' : '% of ceiling'].filter(Boolean).join(', ');
  return [
    row({
      metric: `pipeline end to end: ${fmtInt(p.trades)} trades → 1m bars in candles`,
      ours: `${fmtRate(p.endToEndTradesPerSec, ' trades/s')} (${p.storedSeconds.toFixed(1)} s)`,
      ceiling: `${fmtRate(ceil, ' trades/s')} (publish+consume)`,
      pct: fmtPct(p.endToEndTradesPerSec, ceil),
      target: `≥ ${fmtInt(TARGETS.pipelineTradesPerSec)}/s and ≥ ${TARGETS.pipelinePctOfCeiling} %`,
      verdict: okRate && okPct ? 'pass' : `FAIL (${failed})`,
    }),
    row({
      metric: 'pipeline: all trades applied by symbol actors',
      ours: `${fmtRate(p.appliedTradesPerSec, ' trades/s')} (${p.appliedSeconds.toFixed(1)} s)`,
      ceiling: `${fmtRate(ceil, ' trades/s')} (publish+consume)`,
      pct: fmtPct(p.appliedTradesPerSec, ceil),
    }),
    row({
      metric: 'pipeline correctness: 1m bars vs barsFromTrades',
      ours: summaryOf(p),
      target: 'identical',
      verdict: verdict(correctness(p)),
    }),
  ];
}

/** The consuming side alone: a stored backlog replayed by freshly started symbol actors. */
export function backlogRows(b: PipelineResult, ceiling: CeilingResult | null): TableRow[] {
  const ceil = ceiling?.consumeOnly.tradesPerSec ?? Number.NaN;
  return [
    row({
      metric: `backlog replay: ${fmtInt(b.trades)} stored trades → candles`,
      ours: `${fmtRate(b.endToEndTradesPerSec, ' trades/s')} (${b.storedSeconds.toFixed(1)} s)`,
      ceiling: `${fmtRate(ceil, ' trades/s')} (consume only)`,
      pct: fmtPct(b.endToEndTradesPerSec, ceil),
    }),
    row({
      metric: 'backlog replay correctness: 1m bars vs barsFromTrades',
      ours: summaryOf(b),
      target: 'identical, no crashes',
      verdict: verdict(correctness(b) && b.restarts === 0),
    }),
  ];
}

export function simRow(s: SimResult, ceiling: CeilingResult | null): TableRow {
  const ceil = ceiling?.combined.tradesPerSec ?? Number.NaN;
  return row({
    metric: `sim exchange actor at ${fmtInt(s.configuredPerSec)} trades/s configured`,
    ours: `${fmtRate(s.appliedPerSec, ' trades/s')} applied, backlog ${fmtInt(s.backlog)}`,
    ceiling: fmtRate(ceil, ' trades/s'),
    pct: fmtPct(s.appliedPerSec, ceil),
    target: `≥ ${fmtInt(s.configuredPerSec)}/s (keeps up)`,
    verdict: verdict(s.appliedPerSec >= TARGETS.simKeepUp * s.configuredPerSec),
  });
}

export function latencyRows({ raw, runs }: { raw: RawLatency; runs: LatencyRun[] }): TableRow[] {
  const rawP99 = raw.delivery.p99;
  const ceiling = `p99 ${fmtMs(rawP99)} (raw JetStream)`;
  const rows: TableRow[] = [
    row({
      metric: 'ceiling: raw JetStream publish → pull consumer, same load',
      ceiling: fmtLatency(raw.delivery),
    }),
  ];
  for (const r of runs) {
    const which = `throttle ${r.formingThrottleMs} ms`;
    rows.push(
      row({
        metric: `trade → forming bar (newest trade), ${which}`,
        ours: fmtLatency(r.freshness),
        ceiling,
        target: `p99 ≤ ${TARGETS.formingP99Ms} ms`,
        verdict: verdict(r.freshness.n > 0 && r.freshness.p99 <= TARGETS.formingP99Ms),
      }),
    );
    if (r.formingThrottleMs > 0)
      rows.push(
        row({
          metric: `trade → first forming update with it, ${which}`,
          ours: fmtLatency(r.visibility),
          target: `info (≤ throttle + ${TARGETS.formingP99Ms} ms)`,
        }),
      );
    if (r.closed.n > 0) {
      const limit = r.graceMs + TARGETS.closedOverGraceMs;
      rows.push(
        row({
          metric: `bar end → closed 1m bar (grace ${r.graceMs} ms), ${which}`,
          ours: fmtLatency(r.closed),
          ceiling: `grace + ${fmtMs(rawP99)} = ${fmtMs(r.graceMs + rawP99)}`,
          target: `p99 ≤ ${fmtMs(limit)}`,
          verdict: verdict(r.closed.p99 <= limit),
        }),
      );
    }
  }
  return rows;
}

export function rssRows(r: RssResult): TableRow[] {
  return [
    row({
      metric: `RSS after warm-up → end (${r.minutes} min at ${fmtInt(r.ratePerSec)} trades/s)`,
      ours: `${r.rssAfterWarmupMb.toFixed(0)} MB → ${r.rssEndMb.toFixed(0)} MB`,
    }),
    row({
      metric: 'RSS slope after warm-up',
      ours: `${r.slopeMbPerMin.toFixed(2)} ± ${r.slopeStdErr.toFixed(2)} MB/min (heap ${r.heapSlopeMbPerMin.toFixed(2)})`,
      target: `flat (slope < ${FLAT_MB_PER_MIN} MB/min)`,
      verdict: !r.flat
        ? 'FAIL (growing)'
        : r.slopeMbPerMin > -FLAT_MB_PER_MIN
          ? 'pass (flat)'
          : 'pass (shrinking)',
    }),
    row({
      metric: `live heap after full GC, ${r.liveHeap.seconds.toFixed(0)} s apart (leak check)`,
      ours: `${r.liveHeap.startMb.toFixed(1)} MB → ${r.liveHeap.endMb.toFixed(1)} MB (${r.liveHeap.mbPerMin.toFixed(2)} MB/min)`,
      target: `flat (< ${FLAT_MB_PER_MIN} MB/min)`,
      verdict: r.liveHeap.mbPerMin < FLAT_MB_PER_MIN ? 'pass (flat)' : 'FAIL (growing)',
    }),
  ];
}

export function failoverRows(f: FailoverResult): TableRow[] {
  return [
    row({
      metric: `failover: worker kill -9 → its actors running elsewhere (${f.samplesMs.length} kills)`,
      ours: `p50 ${fmtMs(f.p50)}, max ${fmtMs(f.max)}`,
      target: `p50 ≤ ${fmtMs(TARGETS.failoverP50Ms)}, max ≤ ${fmtMs(TARGETS.failoverMaxMs)}`,
      verdict: verdict(f.p50 <= TARGETS.failoverP50Ms && f.max <= TARGETS.failoverMaxMs),
    }),
  ];
}

export function scalingRows(runs: ScalingResult[], ceiling: CeilingResult | null): TableRow[] {
  const ceil = ceiling?.combined.tradesPerSec ?? Number.NaN;
  return runs.map((r) =>
    row({
      metric: `pipeline with ${r.workers} worker process${r.workers > 1 ? 'es' : ''} (${fmtInt(r.trades)} trades)`,
      ours: fmtRate(r.tradesPerSec, ' trades/s'),
      ceiling: fmtRate(ceil, ' trades/s'),
      pct: fmtPct(r.tradesPerSec, ceil),
    }),
  );
}

export function analyticsRows(a: AnalyticsBenchResult): TableRow[] {
  return [
    row({
      metric: 'per closed bar: quality checks of its trades + all indicators + features + 10 alert rules',
      ours: `${a.perClosedBarUs.toFixed(1)} µs`,
      ceiling: `${a.naiveUs.toFixed(0)} µs (naive: batch recompute over 200 bars)`,
      pct: `${a.speedup.toFixed(0)}× faster`,
      target: `≤ ${TARGETS.analyticsUsPerBar} µs and ≥ ${TARGETS.analyticsSpeedup}× faster`,
      verdict: verdict(
        a.perClosedBarUs <= TARGETS.analyticsUsPerBar && a.speedup >= TARGETS.analyticsSpeedup,
      ),
    }),
    row({
      metric: '  of which: quality checks, per trade (50 trades a bar)',
      ours: `${a.qualityNsPerTrade.toFixed(0)} ns = ${((a.qualityNsPerTrade * 50) / 1000).toFixed(1)} µs a bar`,
    }),
    row({
      metric: '  of which: indicators + features + alerts (onClosedBar)',
      ours: `${a.analyticsUs.toFixed(2)} µs`,
    }),
    row({
      // Like for like: the same indicators, incremental vs recomputed in batch.
      metric: 'all indicators alone: incremental update vs the naive batch recompute',
      ours: `${a.indicatorsUs.toFixed(2)} µs`,
      ceiling: `${a.naiveUs.toFixed(0)} µs`,
      pct: `${(a.naiveUs / a.indicatorsUs).toFixed(0)}× faster`,
      target: `≥ ${TARGETS.analyticsSpeedup}× faster`,
      verdict: verdict(a.naiveUs / a.indicatorsUs >= TARGETS.analyticsSpeedup),
    }),
  ];
}
