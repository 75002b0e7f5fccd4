/**
 * The fake Binance in a child process of its own, driven over IPC, for benchmarks: the client
 * under test (a ccxt exchange actor) then shares no event loop with the exchange feeding it, and
 * the fake's memory is not counted in the client's RSS.
 *
 * The firehose generates trades as they happen (ids 1, 2, … per symbol, timestamp = now, a
 * gentle random walk), keeps the last `retain` per symbol for REST (aggTrades by fromId, so
 * repairs work), and writes them as pre-encoded aggTrade frames, many per write: at a fixed
 * rate, or as fast as the client's socket takes them (`max`, paced by the socket's backlog).
 *
 * Parent side: `spawnFakeBinance()` → `{ restUrl, wsUrl, request(cmd), close() }`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BINANCE_MARKETS, startFakeBinance } from './fake-binance.ts';
import type { ScriptedTrade } from './fake-common.ts';

// ---------------------------------------------------------------- protocol

export type FakeCommand =
  | { cmd: 'firehose'; symbols: string[]; ratePerSec: number | 'max'; retain?: number }
  | { cmd: 'stop' }
  | { cmd: 'drop' }
  | { cmd: 'refuse'; on: boolean }
  | { cmd: 'status' }
  | { cmd: 'trades'; symbol: string };

export interface FakeStatus {
  /** Trades that happened per symbol (= the last id, ids start at 1). */
  emitted: Record<string, number>;
  /** Sockets subscribed to at least one stream. */
  subscribers: number;
  wsConnections: number;
  restCalls: number;
  /** Per symbol, the last id that had happened when the newest subscription was made. */
  lastIdAtSubscribe: Record<string, number>;
  subscribedAt: number | null;
  backlogBytes: number;
}

interface Request {
  id: number;
  command: FakeCommand;
}
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

// ---------------------------------------------------------------- child

const HIGH_WATER = 1 << 20; // bytes queued on a socket before the max-rate firehose waits
const MAX_CHUNK = 2000; // trades per symbol per write at max rate
const TICK_MS = 5;

async function child(): Promise<void> {
  const symbols = BINANCE_MARKETS.map((m) => `${m.base}/${m.quote}`);
  const fake = await startFakeBinance({ trades: Object.fromEntries(symbols.map((s) => [s, []])) });
  const emitted: Record<string, number> = Object.fromEntries(symbols.map((s) => [s, 0]));
  const px: Record<string, number> = Object.fromEntries(symbols.map((s, i) => [s, 100 * (i + 1)]));
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  let hose: { symbols: string[]; ratePerSec: number | 'max'; timer: NodeJS.Timeout | null } | null = null;
  let lastIdAtSubscribe: Record<string, number> = {};
  let subscribedAt: number | null = null;
  let subscribes = fake.counters.subscribeMessages;

  const generate = (symbol: string, n: number): ScriptedTrade[] => {
    const ts = Date.now();
    const out: ScriptedTrade[] = new Array(n);
    let p = px[symbol]!;
    for (let i = 0; i < n; i++) {
      p = Math.round(p * (1 + (rand() - 0.5) * 0.0004) * 100) / 100;
      const id = ++emitted[symbol]!;
      out[i] = {
        id: String(id),
        ts,
        px: p,
        qty: Math.round((0.001 + rand()) * 1e6) / 1e6,
        side: id % 3 === 0 ? 'sell' : 'buy',
      };
    }
    px[symbol] = p;
    return out;
  };
  const happen = (symbol: string, n: number) => {
    if (n <= 0) return;
    fake.extend(symbol, generate(symbol, n));
    fake.emitBulk(symbol, n);
  };
  // A new subscription: remember where the tape stood (what came after is streamed to it).
  const watchSubscribes = () => {
    if (fake.counters.subscribeMessages !== subscribes) {
      subscribes = fake.counters.subscribeMessages;
      lastIdAtSubscribe = { ...emitted };
      subscribedAt = Date.now();
    }
  };

  const startHose = (symbols: string[], ratePerSec: number | 'max', retain: number) => {
    for (const s of symbols) fake.retain(s, retain);
    const h = { symbols, ratePerSec, timer: null as NodeJS.Timeout | null };
    hose = h;
    let last = performance.now();
    let owed = 0;
    let turn = 0;
    const tick = () => {
      if (hose !== h) return;
      watchSubscribes();
      if (ratePerSec === 'max') {
        if (fake.backlogBytes() < HIGH_WATER) for (const s of symbols) happen(s, MAX_CHUNK);
        h.timer = setTimeout(tick, fake.backlogBytes() < HIGH_WATER ? 0 : 1);
        return;
      }
      const now = performance.now();
      owed += (ratePerSec * (now - last)) / 1000;
      last = now;
      const n = Math.floor(owed);
      owed -= n;
      const k = symbols.length;
      for (let i = 0; i < k; i++)
        happen(symbols[i]!, Math.floor(n / k) + ((i - turn + k) % k < n % k ? 1 : 0));
      turn = (turn + (n % k)) % k;
      h.timer = setTimeout(tick, TICK_MS);
    };
    tick();
  };

  const status = (): FakeStatus => {
    watchSubscribes();
    return {
      emitted: { ...emitted },
      subscribers: fake.subscriptions().filter((s) => s.length > 0).length,
      wsConnections: fake.counters.wsConnections,
      restCalls: fake.counters.restCalls(),
      lastIdAtSubscribe: { ...lastIdAtSubscribe },
      subscribedAt,
      backlogBytes: fake.backlogBytes(),
    };
  };

  const handle = (c: FakeCommand): unknown => {
    switch (c.cmd) {
      case 'firehose':
        startHose(c.symbols, c.ratePerSec, c.retain ?? 500_000);
        return status();
      case 'stop':
        if (hose?.timer) clearTimeout(hose.timer);
        hose = null;
        return status();
      case 'drop':
        watchSubscribes();
        fake.dropConnections();
        return status();
      case 'refuse':
        fake.refuseConnections(c.on);
        return status();
      case 'status':
        return status();
      case 'trades':
        return fake.allTrades(c.symbol).map((t) => [Number(t.id), t.ts, t.px, t.qty]);
    }
  };

  process.on('message', (m: Request) => {
    let reply: Reply;
    try {
      reply = { id: m.id, ok: true, result: handle(m.command) };
    } catch (err) {
      reply = { id: m.id, ok: false, error: String((err as Error).stack ?? err) };
    }
    process.send!(reply);
  });
  process.on('disconnect', () => {
    void fake.close().finally(() => process.exit(0));
  });
  process.send!({ id: 0, ok: true, result: { restUrl: fake.restUrl, wsUrl: fake.wsUrl } });
}

// ---------------------------------------------------------------- parent

export interface FakeBinanceProcess {
  restUrl: string;
  wsUrl: string;
  pid: number;
  request<T = FakeStatus>(command: FakeCommand): Promise<T>;
  close(): Promise<void>;
}

export async function spawnFakeBinance(): Promise<FakeBinanceProcess> {
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ['--fake-binance-child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 1;
  const ready = new Promise<{ restUrl: string; wsUrl: string }>((resolve, reject) => {
    pending.set(0, { resolve: resolve as (v: unknown) => void, reject });
    proc.once('exit', (code) => reject(new Error(`fake binance process exited with ${code}`)));
  });
  proc.on('message', (r: Reply) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (r.ok) p.resolve(r.result);
    else p.reject(new Error(r.error));
  });
  const urls = await ready;
  return {
    ...urls,
    pid: proc.pid!,
    request<T>(command: FakeCommand): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        proc.send({ id, command } satisfies Request);
      });
    },
    async close() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.disconnect();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

if (process.argv.includes('--fake-binance-child')) {
  child().catch((err) => {
    process.stderr.write(`fake binance process failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
