/**
 * What the data-quality checks cost the pipeline: the pipeline figure (bench/pipeline.ts, the
 * workload shape of section 2) with the checks at their defaults against the same run with every
 * check that can be switched off set to `off` (`invalid` always runs: a NaN or negative price
 * must never reach a bar). Runs alternate on/off, then off/on, over fresh exchanges with the
 * same trades, in one process, nats-server and database; the medians are compared.
 *
 * The workload's trades are dated in the past and published as live, so the `stale` check flags
 * every one of them: the checks' flag path (not only their clean path) is what is measured.
 *
 *   npx tsx bench/quality-overhead.ts [--quick] [--rounds N] [--trades N] [--backlog]   prints a small table
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { QUALITY_CHECKS } from '../analytics/quality.ts';
import { type BenchEnv, createBenchDb, openTopology, progress, startBenchNats } from './infra.ts';
import { type PipelineResult, runPipeline } from './pipeline.ts';
import { fmtInt, fmtPct, fmtRate, printReport, type TableRow, verdict } from './report.ts';
import { BENCH_SYMBOLS, buildWorkload } from './workload.ts';

/** The pipeline may lose at most this share of its trades/s to the quality checks. */
export const MAX_QUALITY_OVERHEAD_PCT = 10;

/** `analytics.quality` with every check off that can be (`invalid` cannot). */
export const QUALITY_OFF: Record<string, unknown> = Object.fromEntries(
  QUALITY_CHECKS.filter((c) => c !== 'invalid').map((c) => [c, { action: 'off' }]),
);

export interface QualityOverheadOptions {
  /** Trades per symbol (5 symbols, as in the pipeline section). */
  tradesPerSymbol: number;
  /** Pairs of runs (on + off); the order alternates from one round to the next. */
  rounds: number;
  /** Publishes in flight. */
  window: number;
  batchSize: number;
  graceMs: number;
  /** `live`: actors run while the trades are published (the pipeline figure); `backlog`: consuming alone. */
  mode: 'live' | 'backlog';
  timeoutMs: number;
}

export interface QualityOverheadResult {
  mode: 'live' | 'backlog';
  trades: number;
  rounds: number;
  on: PipelineResult[];
  off: PipelineResult[];
  /** Medians of the end-to-end figure (trades → 1m bars in candles), trades/s. */
  onTradesPerSec: number;
  offTradesPerSec: number;
  /** How much lower the figure is with the checks on, in % of the figure with them off. */
  overheadPct: number;
  /** The same for the symbol actors alone (every trade applied). */
  onAppliedPerSec: number;
  offAppliedPerSec: number;
  appliedOverheadPct: number;
  /** Medians of this process's CPU time per trade over the timed window (publisher, actors, writer), µs. */
  onCpuUsPerTrade: number;
  offCpuUsPerTrade: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const lowerBy = (on: number, off: number) => (100 * (off - on)) / off;

export async function runQualityOverhead(
  env: BenchEnv,
  opts: QualityOverheadOptions,
): Promise<QualityOverheadResult> {
  const on: PipelineResult[] = [];
  const off: PipelineResult[] = [];
  // One exchange per run (a run's trades stay in TRADES under its subjects); same-length ids,
  // so the messages are the same size.
  const workload = (ex: string) =>
    buildWorkload({
      ex,
      symbols: [...BENCH_SYMBOLS],
      tradesPerSymbol: opts.tradesPerSymbol,
      batchSize: opts.batchSize,
      tradesPerMs: 1,
      graceMs: opts.graceMs,
    });
  const pipeline = (ex: string, checks: 'on' | 'off') =>
    runPipeline(env, workload(ex), {
      mode: opts.mode,
      window: opts.window,
      graceMs: opts.graceMs,
      timeoutMs: opts.timeoutMs,
      config: checks === 'off' ? { analytics: { quality: QUALITY_OFF } } : {},
    });
  const tag = (checks: 'on' | 'off') => (checks === 'on' ? 'on' : 'of');
  // A first run pays for JIT compilation and cold caches: one unmeasured run per setting.
  for (const checks of ['on', 'off'] as const) {
    progress('quality', `warm-up run, checks ${checks}`);
    await pipeline(`qw${tag(checks)}`, checks);
  }
  for (let round = 0; round < opts.rounds; round++) {
    for (const checks of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      progress('quality', `round ${round + 1}/${opts.rounds}: checks ${checks}`);
      const r = await pipeline(`q${round}${tag(checks)}`, checks);
      progress(
        'quality',
        `checks ${checks}: ${fmtRate(r.endToEndTradesPerSec, ' trades/s')} end to end, ${fmtRate(r.appliedTradesPerSec, ' trades/s')} applied`,
      );
      (checks === 'on' ? on : off).push(r);
    }
  }
  const onTradesPerSec = median(on.map((r) => r.endToEndTradesPerSec));
  const offTradesPerSec = median(off.map((r) => r.endToEndTradesPerSec));
  const onAppliedPerSec = median(on.map((r) => r.appliedTradesPerSec));
  const offAppliedPerSec = median(off.map((r) => r.appliedTradesPerSec));
  const cpuPerTrade = (runs: PipelineResult[]) => median(runs.map((r) => (r.cpuSeconds * 1e6) / r.trades));
  return {
    mode: opts.mode,
    trades: on[0]?.trades ?? 0,
    rounds: opts.rounds,
    on,
    off,
    onTradesPerSec,
    offTradesPerSec,
    overheadPct: lowerBy(onTradesPerSec, offTradesPerSec),
    onAppliedPerSec,
    offAppliedPerSec,
    appliedOverheadPct: lowerBy(onAppliedPerSec, offAppliedPerSec),
    onCpuUsPerTrade: cpuPerTrade(on),
    offCpuUsPerTrade: cpuPerTrade(off),
  };
}

const pct = (x: number) => `${x >= 0 ? '−' : '+'}${Math.abs(x).toFixed(1)} %`;

export function qualityOverheadRows(r: QualityOverheadResult): TableRow[] {
  const runs = [...r.on, ...r.off];
  const identical = runs.every(
    (p) => p.mismatches.length === 0 && p.storedBars === p.expectedBars && p.quarantined === 0,
  );
  const restarts = runs.reduce((n, p) => n + p.restarts, 0);
  const of = `${fmtInt(r.trades)} trades, median of ${r.rounds}`;
  const cpuMore = (100 * (r.onCpuUsPerTrade - r.offCpuUsPerTrade)) / r.offCpuUsPerTrade;
  return [
    {
      metric: `quality checks on (defaults) vs off: pipeline ${r.mode}, end to end (${of})`,
      ours: `${fmtRate(r.onTradesPerSec, ' trades/s')} (${pct(r.overheadPct)})`,
      ceiling: `${fmtRate(r.offTradesPerSec, ' trades/s')} (checks off)`,
      pct: fmtPct(r.onTradesPerSec, r.offTradesPerSec),
      target: `≤ ${MAX_QUALITY_OVERHEAD_PCT} % lower trades/s`,
      verdict: verdict(r.overheadPct <= MAX_QUALITY_OVERHEAD_PCT),
    },
    {
      metric: `quality checks on vs off: symbol actors applying every trade (${of})`,
      ours: `${fmtRate(r.onAppliedPerSec, ' trades/s')} (${pct(r.appliedOverheadPct)})`,
      ceiling: `${fmtRate(r.offAppliedPerSec, ' trades/s')} (checks off)`,
      pct: fmtPct(r.onAppliedPerSec, r.offAppliedPerSec),
      target: '—',
      verdict: 'info',
    },
    {
      // Less sensitive to other load on the machine than wall-clock rates.
      metric: `quality checks on vs off: CPU of this process per trade (${of})`,
      ours: `${r.onCpuUsPerTrade.toFixed(2)} µs (${cpuMore >= 0 ? '+' : '−'}${Math.abs(cpuMore).toFixed(1)} %)`,
      ceiling: `${r.offCpuUsPerTrade.toFixed(2)} µs (checks off)`,
      pct: '—',
      target: '—',
      verdict: 'info',
    },
    {
      metric: 'quality on/off runs: 1m bars vs barsFromTrades',
      ours: `${runs.length} runs: ${identical ? 'all identical' : 'DIFFERENCES'}, ${restarts} restarts`,
      ceiling: '—',
      pct: '—',
      target: 'identical, nothing quarantined',
      verdict: verdict(identical && restarts === 0),
    },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      trades: { type: 'string' },
      backlog: { type: 'boolean', default: false },
    },
  });
  const quick = args.quick ?? false;
  const opts: QualityOverheadOptions = {
    tradesPerSymbol:
      Math.ceil(Number(args.trades ?? (quick ? 500_000 : 1_000_000)) / BENCH_SYMBOLS.length) - 1,
    rounds: Number(args.rounds ?? (quick ? 2 : 5)),
    window: 256,
    batchSize: 200,
    graceMs: 1000,
    mode: args.backlog ? 'backlog' : 'live',
    timeoutMs: 600_000,
  };
  const nats = await startBenchNats();
  const db = await createBenchDb();
  const env: BenchEnv = { nats, db, topo: await openTopology(nats) };
  let code = 0;
  try {
    const r = await runQualityOverhead(env, opts);
    printReport(qualityOverheadRows(r), [
      'ceiling column: the same pipeline, same workload, same run, with every quality check but `invalid` off',
      'the workload is dated in the past and published as live: `stale` flags every trade (the flag path is measured)',
    ]);
  } catch (e) {
    process.stderr.write(`quality overhead bench failed: ${(e as Error).stack ?? e}\n`);
    code = 1;
  } finally {
    await env.topo.nc.close().catch(() => {});
    await db.drop().catch(() => {});
    await nats.stop().catch(() => {});
  }
  process.exit(code);
}
