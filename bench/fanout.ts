/**
 * Fan-out: N authenticated graphql-ws subscribers over 100 candle series (20 symbols × 5
 * timeframes), forming bars every 100 ms per series (the default throttle) and a closed bar per
 * series every 5 s, published straight to NATS with a sequence number (`n`, forming bars) and the
 * publish time (`nt`); closed bars advance the open time by a minute. The gateway runs as a process of its own (bench/fanout-gateway.ts); subscribers are
 * spread over forked client processes (bench/fanout-client.ts). Measured per run: p50/p99
 * delivery latency (publish → client receive), gateway CPU per delivered message, RSS over
 * time, event-loop delay, missed updates per subscriber. Run twice in the same bench: shared
 * per-key execution (ours) and the per-subscriber path (`gateway.ws.sharedExecution: false`,
 * the baseline, reported as the "ceiling" column).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type Bar, encodeJson, SCHEMA_VERSION, subjects, type Timeframe } from '../core/protocol/index.ts';
import { createUser } from '../core/users-store.ts';
import { addExchange, type BenchEnv, benchConfig, nowMs, progress, sleep } from './infra.ts';
import type { TableRow } from './report.ts';

export interface FanoutOptions {
  subscribers: number;
  clientProcesses: number;
  gateways: number;
  warmupSec: number;
  seconds: number;
}

export interface FanoutRun {
  mode: 'shared' | 'per-subscriber';
  subscribers: number;
  connected: number;
  gateways: number;
  seconds: number;
  received: number;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpuUsPerMsg: number;
  rssMb: number[];
  lagP99Ms: number;
  lagMaxMs: number;
  /** Forming updates a subscriber never saw (conflated: latest wins, by design under a stall). */
  missed: number;
  subscribersMissing: number;
  /** Closed bars a subscriber never saw (must be 0). */
  missedClosed: number;
}

const SYMBOLS = Array.from({ length: 20 }, (_, i) => `F${String(i).padStart(2, '0')}`);
const TIMEFRAMES: Timeframe[] = ['1m', '5m', '15m', '1h', '1d'];
const SERIES = SYMBOLS.flatMap((symbol) => TIMEFRAMES.map((timeframe) => ({ symbol, timeframe })));
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

function message<T>(child: ChildProcess, type: string, timeoutMs = 300_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${type} from a child within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before ${type}`)));
  });
}

/** 100 series, 10 ms slices: each series gets a forming bar every 100 ms, a closed one every 5 s. */
function startPublisher(env: BenchEnv): () => void {
  const seq = new Array<number>(SERIES.length).fill(0);
  const opened = new Array<number>(SERIES.length).fill(Date.UTC(2026, 0, 1));
  let tick = 0;
  const timer = setInterval(() => {
    const slice = tick % 10;
    // Every 5 s (50 rounds of 10 slices) each series also closes its bar.
    const closing = Math.floor(tick / 10) % 50 === 0;
    tick++;
    for (let i = slice; i < SERIES.length; i += 10) {
      const { symbol, timeframe } = SERIES[i]!;
      const t = opened[i]!;
      const bar: Bar = {
        v: SCHEMA_VERSION,
        ex: 'fan',
        sym: symbol,
        tf: timeframe,
        t,
        o: 100,
        h: 101,
        l: 99,
        c: 100 + (seq[i]! % 100) / 100,
        vol: seq[i]!,
        n: ++seq[i]!,
        closed: false,
        rev: 0,
        gap: 0,
        ft: t,
        lt: t,
        nt: Math.round(nowMs()),
      };
      env.topo.nc.publish(subjects.live(timeframe, 'fan', symbol), encodeJson(bar));
      if (closing) {
        env.topo.nc.publish(
          subjects.bar(timeframe, 'fan', symbol),
          encodeJson({ ...bar, closed: true, nt: Math.round(nowMs()) }),
        );
        opened[i] = t + 60_000;
      }
    }
  }, 10);
  return () => clearInterval(timer);
}

async function signIn(url: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }',
      variables: { u: username, p: password },
    }),
  });
  const body = (await res.json()) as { data?: { login: { accessToken: string } } };
  if (!body.data) throw new Error(`bench login failed: ${JSON.stringify(body)}`);
  return body.data.login.accessToken;
}

/** Sends `type` to a child and waits for its answer of the same type. */
function ask<T>(child: ChildProcess, type: string): Promise<T> {
  const answer = message<T>(child, type);
  child.send({ type });
  return answer;
}

function percentile(hist: number[], total: number, p: number): number {
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]!;
    if (seen >= total * p) return ms;
  }
  return hist.length;
}

interface GatewayStats {
  cpuUs: number;
  rss: number;
  lagP99Ms: number;
  lagMaxMs: number;
  deliveries: number;
}

async function runMode(env: BenchEnv, o: FanoutOptions, shared: boolean): Promise<FanoutRun> {
  const mode = shared ? 'shared' : 'per-subscriber';
  const cfg = benchConfig(env, {
    gateway: {
      host: '127.0.0.1',
      port: 0,
      ws: { sharedExecution: shared, maxSocketsPerPrincipal: 1_000_000, maxConnections: 1_000_000 },
      // Every socket is the same bench user: its subscribe budget would refuse all but the first 120.
      rateLimits: { enabled: false },
    },
    // Keys for this run only (the gateway refuses to start without them).
    auth: { jwtSecret: randomBytes(24).toString('hex'), secretKey: randomBytes(32).toString('hex') },
  });
  const gateways = Array.from({ length: o.gateways }, () =>
    fork(here('./fanout-gateway.ts'), {
      env: { ...process.env, FANOUT_CONFIG: JSON.stringify(cfg) },
      // FANOUT_CPU_PROF=<dir>: a V8 CPU profile of each gateway (open it in Chrome DevTools).
      execArgv: process.env.FANOUT_CPU_PROF
        ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${process.env.FANOUT_CPU_PROF}`]
        : process.execArgv,
    }),
  );
  const clients: ChildProcess[] = [];
  try {
    const urls = (await Promise.all(gateways.map((g) => message<{ url: string }>(g, 'ready')))).map((m) =>
      m.url.replace(/^http/, 'ws').concat('/graphql'),
    );
    const token = await signIn(
      urls[0]!.replace(/^ws/, 'http').replace(/\/graphql$/, ''),
      'fanout',
      'fanout-bench-pw',
    );
    const per = Math.ceil(o.subscribers / o.clientProcesses);
    for (let c = 0; c < o.clientProcesses; c++) {
      const sockets = Math.min(per, o.subscribers - c * per);
      if (sockets <= 0) break;
      const job = { urls, token, sockets, offset: c * per, series: SERIES };
      clients.push(
        fork(here('./fanout-client.ts'), { env: { ...process.env, FANOUT_JOB: JSON.stringify(job) } }),
      );
    }
    // Connecting is paced by the gateway's credential checks: allow ~20 ms per socket.
    const connectMs = 120_000 + o.subscribers * 20;
    const ready = await Promise.all(
      clients.map((c) => message<{ open: number; failed: number }>(c, 'ready', connectMs)),
    );
    const connected = ready.reduce((n, r) => n + r.open, 0);
    progress(
      'fanout',
      `${mode}: ${connected}/${o.subscribers} subscribers on ${o.gateways} gateway(s); warming up`,
    );
    await sleep(o.warmupSec * 1000);
    const stats = async () => Promise.all(gateways.map((g) => ask<GatewayStats>(g, 'stats')));
    for (const c of clients) c.send({ type: 'reset' });
    const start = await stats();
    const t0 = Date.now();
    const rssMb: number[] = [start.reduce((n, s) => n + s.rss, 0) / 2 ** 20];
    let lagP99Ms = 0;
    let lagMaxMs = 0;
    let last = start;
    while (Date.now() - t0 < o.seconds * 1000) {
      await sleep(Math.min(5000, o.seconds * 1000 - (Date.now() - t0)));
      last = await stats();
      rssMb.push(last.reduce((n, s) => n + s.rss, 0) / 2 ** 20);
      lagP99Ms = Math.max(lagP99Ms, ...last.map((s) => s.lagP99Ms));
      lagMaxMs = Math.max(lagMaxMs, ...last.map((s) => s.lagMaxMs));
    }
    const seconds = (Date.now() - t0) / 1000;
    const reports = await Promise.all(
      clients.map((c) =>
        ask<{
          hist: number[];
          received: number;
          missed: number;
          missedClosed: number;
          subscribersMissing: number;
        }>(c, 'report'),
      ),
    );
    const hist = reports[0]!.hist.map((_, ms) => reports.reduce((n, r) => n + r.hist[ms]!, 0));
    const received = reports.reduce((n, r) => n + r.received, 0);
    const cpuUs = last.reduce((n, s, i) => n + s.cpuUs - start[i]!.cpuUs, 0);
    const delivered = last.reduce((n, s, i) => n + s.deliveries - start[i]!.deliveries, 0);
    const maxMs = hist.findLastIndex((x) => x > 0);
    return {
      mode,
      subscribers: o.subscribers,
      connected,
      gateways: o.gateways,
      seconds,
      received,
      msgsPerSec: received / seconds,
      p50Ms: percentile(hist, received, 0.5),
      p99Ms: percentile(hist, received, 0.99),
      maxMs,
      cpuUsPerMsg: delivered > 0 ? cpuUs / delivered : Number.NaN,
      rssMb,
      lagP99Ms,
      lagMaxMs,
      missed: reports.reduce((n, r) => n + r.missed, 0),
      missedClosed: reports.reduce((n, r) => n + r.missedClosed, 0),
      subscribersMissing: reports.reduce((n, r) => n + r.subscribersMissing, 0),
    };
  } finally {
    for (const c of clients) c.kill('SIGKILL');
    await Promise.all(
      gateways.map(async (g) => {
        if (g.connected) g.send({ type: 'stop' });
        await Promise.race([new Promise((r) => g.once('exit', r)), sleep(10_000)]);
        g.kill('SIGKILL');
      }),
    );
  }
}

export async function runFanout(env: BenchEnv, o: FanoutOptions): Promise<FanoutRun[]> {
  await addExchange(env.db.pool, 'fan', 'external', SYMBOLS);
  await createUser(env.db.pool, 'fanout', 'fanout-bench-pw', 'viewer');
  const stop = startPublisher(env);
  try {
    const runs: FanoutRun[] = [];
    // FANOUT_MODES=shared (or per-subscriber) runs one mode only.
    const modes = process.env.FANOUT_MODES?.split(',') ?? ['shared', 'per-subscriber'];
    for (const shared of [true, false].filter((x) => modes.includes(x ? 'shared' : 'per-subscriber'))) {
      const run = await runMode(env, o, shared);
      progress(
        'fanout',
        `${run.mode}: p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, ${run.cpuUsPerMsg.toFixed(1)} µs CPU/msg, ` +
          `${run.msgsPerSec.toFixed(0)} msgs/s, forming conflated ${run.missed}, closed missed ${run.missedClosed}`,
      );
      runs.push(run);
    }
    return runs;
  } finally {
    stop();
  }
}

export function fanoutRows(runs: FanoutRun[]): TableRow[] {
  const ours = runs.find((r) => r.mode === 'shared');
  const base = runs.find((r) => r.mode === 'per-subscriber');
  if (!ours) return [];
  const label = `fan-out N=${ours.subscribers} (${ours.connected} connected, ${ours.gateways} gateway)`;
  const rss = (r: FanoutRun) => `${r.rssMb[0]!.toFixed(0)}→${r.rssMb.at(-1)!.toFixed(0)} MB`;
  const row = (metric: string, a: string, b: string, target: string, ok: boolean | null): TableRow => ({
    metric: `${label}: ${metric}`,
    ours: a,
    ceiling: b,
    pct: '—',
    target,
    verdict: ok === null ? 'info' : ok ? 'pass' : 'FAIL',
  });
  return [
    row(
      'p50 / p99 publish → client',
      `${ours.p50Ms} / ${ours.p99Ms} ms`,
      base ? `${base.p50Ms} / ${base.p99Ms} ms (per-subscriber)` : '—',
      'p99 ≤ 100 ms',
      ours.p99Ms <= 100,
    ),
    row(
      'gateway CPU per delivered message',
      `${ours.cpuUsPerMsg.toFixed(1)} µs`,
      base ? `${base.cpuUsPerMsg.toFixed(1)} µs` : '—',
      '≤ 10 µs',
      ours.cpuUsPerMsg <= 10,
    ),
    row(
      'delivered messages/s',
      ours.msgsPerSec.toFixed(0),
      base ? base.msgsPerSec.toFixed(0) : '—',
      '—',
      null,
    ),
    row(
      'closed bars missed',
      String(ours.missedClosed),
      base ? String(base.missedClosed) : '—',
      '0',
      ours.missedClosed === 0,
    ),
    row(
      'forming updates conflated (subscribers with any)',
      `${ours.missed} (${ours.subscribersMissing})`,
      base ? `${base.missed} (${base.subscribersMissing})` : '—',
      '0',
      ours.missed === 0,
    ),
    row('gateway RSS start→end', rss(ours), base ? rss(base) : '—', 'flat', null),
    row(
      'event-loop delay p99 / max',
      `${ours.lagP99Ms.toFixed(0)} / ${ours.lagMaxMs.toFixed(0)} ms`,
      base ? `${base.lagP99Ms.toFixed(0)} / ${base.lagMaxMs.toFixed(0)} ms` : '—',
      '—',
      null,
    ),
  ];
}
