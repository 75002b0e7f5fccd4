/**
 * `npm run bench`: a self-contained benchmark of tickmesh on this machine. Starts a private
 * nats-server and a fresh database, measures the ceilings and our figures in the same run,
 * prints one comparison table (stdout; progress on stderr) and writes bench/results/<ts>.json.
 *
 *   npm run bench -- --quick                 short runs (smoke check)
 *   npm run bench -- --only pipeline,latency sections: ceiling pipeline sim latency rss backlog
 *                                             failover scaling
 *   npm run bench -- --rss-minutes 10        length of the RSS run (default 10, --quick 1)
 *   npm run bench -- --only fanout --fanout-n 10000 [--fanout-gateways 2] [--fanout-seconds 30]
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { runAnalyticsBench } from './analytics.ts';
import { runCeiling } from './ceiling.ts';
import { runFailover, runScaling } from './distributed.ts';
import { exchangeRows, runExchangeBench } from './exchange.ts';
import { fanoutRows, runFanout } from './fanout.ts';
import { type BenchEnv, createBenchDb, log, openTopology, progress, startBenchNats } from './infra.ts';
import { runLatency } from './latency.ts';
import { notesFor } from './notes.ts';
import { runPipeline } from './pipeline.ts';
import { qualityOverheadRows, runQualityOverhead } from './quality-overhead.ts';
import { printReport, type TableRow, writeResults } from './report.ts';
import {
  analyticsRows,
  type BenchOptions,
  backlogRows,
  ceilingRows,
  failoverRows,
  latencyRows,
  pipelineRows,
  type Results,
  rssRows,
  SECTIONS,
  type Section,
  scalingRows,
  simRow,
} from './rows.ts';
import { runRss } from './rss.ts';
import { runSimExchange } from './sim.ts';
import { BENCH_SYMBOLS, buildWorkload } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'rss-minutes': { type: 'string' },
    only: { type: 'string', multiple: true },
    trades: { type: 'string' },
    window: { type: 'string', default: '256' },
    'fanout-n': { type: 'string' },
    'fanout-gateways': { type: 'string', default: '1' },
    'fanout-seconds': { type: 'string' },
    'fanout-clients': { type: 'string', default: '4' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  process.stdout.write(
    'usage: npm run bench -- [--quick] [--only ceiling,pipeline,sim,latency,rss,backlog,failover,scaling,\n' +
      '                                         analytics,quality,exchange,fanout]\n' +
      '                        [--fanout-n N] [--fanout-gateways 1|2] [--fanout-seconds S] [--fanout-clients P]\n' +
      '                        [--rss-minutes N]\n' +
      '                        [--trades N (pipeline workload)] [--window N (publishes in flight)]\n',
  );
  process.exit(0);
}

const quick = args.quick ?? false;
const only = new Set(
  (args.only ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of only)
  if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`unknown section ${s}`);
const enabled = (s: Section) => only.size === 0 || only.has(s);
const symbols = [...BENCH_SYMBOLS];

const options: BenchOptions = {
  quick,
  sections: SECTIONS.filter(enabled),
  window: Number(args.window),
  tradesTotal: Number(args.trades ?? (quick ? 200_000 : 3_000_000)),
  batchSize: 200,
  tradesPerMs: 1,
  pipelineGraceMs: 1000,
  pgRows: quick ? 50_000 : 200_000,
  corePasses: quick ? 1 : 3,
  sim: { ratePerSymbol: 20_000, warmupSec: quick ? 3 : 5, seconds: quick ? 10 : 30 },
  latency: {
    ratePerSec: 10_000,
    graceMs: 200,
    warmupMs: 3000,
    boundaries: quick ? 1 : 3,
    seconds: quick ? 10 : 30,
  },
  rss: {
    minutes: Number(args['rss-minutes'] ?? (quick ? 1 : 10)),
    ratePerSec: 20_000,
    sampleSec: quick ? 5 : 10,
  },
  failover: { kills: quick ? 2 : 5 },
  scaling: { tradesPerSymbol: quick ? 50_000 : 250_000 },
  quality: { trades: quick ? 500_000 : 1_000_000, rounds: quick ? 2 : 3 },
  exchange: { rssMinutes: Number(args['rss-minutes'] ?? (quick ? 1 : 10)) },
  fanout: {
    subscribers: Number(args['fanout-n'] ?? (quick ? 500 : 2000)),
    clientProcesses: Number(args['fanout-clients']),
    gateways: Number(args['fanout-gateways']),
    warmupSec: quick ? 3 : 5,
    seconds: Number(args['fanout-seconds'] ?? (quick ? 10 : 30)),
  },
};

function natsServerVersion(): string {
  try {
    return execFileSync(process.env.NATS_SERVER_BIN ?? 'nats-server', ['--version'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return '?';
  }
}

async function main(): Promise<number> {
  const results: Results = {
    startedAt: new Date().toISOString(),
    options,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memGb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      natsServer: natsServerVersion(),
    },
    errors: [],
  };
  progress('setup', `sections: ${options.sections.join(', ')}${quick ? ' (quick)' : ''}`);
  const nats = await startBenchNats();
  const db = await createBenchDb().catch(async (e) => {
    await nats.stop();
    throw e;
  });
  const env: BenchEnv = { nats, db, topo: await openTopology(nats) };
  const cleanup = async () => {
    await env.topo.nc.close().catch(() => {});
    await db.drop().catch((e) => log.error({ err: e }, 'dropping the bench database failed'));
    await nats.stop().catch(() => {});
  };
  const onSignal = () => {
    progress('setup', 'interrupted: cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rows: TableRow[] = [];
  const attempt = async (section: Section, fn: () => Promise<void>) => {
    if (!enabled(section)) return;
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      const message = (e as Error).stack ?? String(e);
      results.errors.push({ section, message });
      rows.push({
        metric: `${section}: error`,
        ours: (e as Error).message.slice(0, 80),
        ceiling: '—',
        pct: '—',
        target: '—',
        verdict: 'ERROR',
      });
      progress(section, `failed: ${message}`);
    }
    progress(section, `done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  };
  try {
    const workloadFor = (ex: string) => {
      const w = buildWorkload({
        ex,
        symbols,
        tradesPerSymbol: Math.ceil(options.tradesTotal / symbols.length) - 1,
        batchSize: options.batchSize,
        tradesPerMs: options.tradesPerMs,
        graceMs: options.pipelineGraceMs,
      });
      progress(
        'setup',
        `workload ${ex}: ${w.totalTrades} trades, ${w.batches.length} messages, ${(w.totalBytes / 2 ** 20).toFixed(0)} MiB`,
      );
      return w;
    };
    let workload = enabled('ceiling') || enabled('pipeline') ? workloadFor('bench') : null;
    await attempt('ceiling', async () => {
      results.ceiling = await runCeiling(env, workload!, {
        window: options.window,
        corePasses: options.corePasses,
        pgRows: options.pgRows,
      });
      rows.push(...ceilingRows(results.ceiling, options.batchSize));
    });
    const pipelineRun = { window: options.window, graceMs: options.pipelineGraceMs };
    await attempt('pipeline', async () => {
      results.pipeline = await runPipeline(env, workload!, {
        ...pipelineRun,
        mode: 'live',
        timeoutMs: 600_000,
      });
      rows.push(...pipelineRows(results.pipeline, results.ceiling ?? null));
    });
    // Release the pre-encoded payloads (~220 MB at full size) before the live sections measure memory.
    workload = null;
    await attempt('sim', async () => {
      results.sim = await runSimExchange(env, { symbols, ...options.sim });
      rows.push(simRow(results.sim, results.ceiling ?? null));
    });
    await attempt('latency', async () => {
      results.latency = await runLatency(env, { symbols, ...options.latency });
      rows.push(...latencyRows(results.latency));
    });
    await attempt('rss', async () => {
      results.rss = await runRss(env, { symbols, ...options.rss });
      rows.push(...rssRows(results.rss));
    });
    // Last: a replayed backlog has been seen to starve the event loop (see the notes).
    await attempt('backlog', async () => {
      const w = workloadFor('benchbl');
      results.backlog = await runPipeline(env, w, { ...pipelineRun, mode: 'backlog', timeoutMs: 180_000 });
      rows.push(...backlogRows(results.backlog, results.ceiling ?? null));
    });
    // Worker processes of their own: failover time and 1 vs 2 workers.
    await attempt('failover', async () => {
      results.failover = await runFailover(env, options.failover.kills);
      rows.push(...failoverRows(results.failover));
    });
    await attempt('analytics', async () => {
      results.analytics = await runAnalyticsBench();
      rows.push(...analyticsRows(results.analytics));
    });
    await attempt('scaling', async () => {
      results.scaling = await runScaling(env, options.scaling.tradesPerSymbol);
      rows.push(...scalingRows(results.scaling, results.ceiling ?? null));
    });
    // What the per-trade quality checks cost the pipeline (same workload shape, checks on vs off).
    await attempt('quality', async () => {
      results.quality = await runQualityOverhead(env, {
        tradesPerSymbol: Math.ceil(options.quality.trades / symbols.length) - 1,
        rounds: options.quality.rounds,
        window: options.window,
        batchSize: options.batchSize,
        graceMs: options.pipelineGraceMs,
        mode: 'live',
        timeoutMs: 600_000,
      });
      rows.push(...qualityOverheadRows(results.quality));
    });
    // The ccxt exchange actor against a fake Binance: throughput, reconnect → repaired, RSS.
    await attempt('exchange', async () => {
      results.exchange = await runExchangeBench(env, { quick, minutes: options.exchange.rssMinutes });
      rows.push(...exchangeRows(results.exchange, results.ceiling ?? null));
      for (const e of results.exchange.errors)
        results.errors.push({ section: 'exchange', message: `${e.section}: ${e.message}` });
    });
    // graphql-ws fan-out: shared per-key execution vs the per-subscriber path, same run.
    await attempt('fanout', async () => {
      results.fanout = await runFanout(env, options.fanout);
      rows.push(...fanoutRows(results.fanout));
    });
  } finally {
    await cleanup();
  }
  results.finishedAt = new Date().toISOString();
  printReport(rows, notesFor(results));
  const file = writeResults({ ...results, table: rows });
  process.stdout.write(`results: ${file}\n`);
  return results.errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
