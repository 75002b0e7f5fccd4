/**
 * Subscribers for bench/fanout.ts: one process holding many graphql-ws sockets (raw `ws`, the
 * graphql-transport-ws protocol), one `candles` subscription each. Per message it reads the
 * series' sequence number (`trades`) and the publish time (`tradeReceivedMs`) without a full
 * JSON parse; it counts latency in a 1 ms histogram and sequence gaps (missed updates).
 */
import WebSocket from 'ws';

interface Job {
  urls: string[];
  token: string;
  sockets: number;
  offset: number;
  series: { symbol: string; timeframe: string }[];
}

const job = JSON.parse(process.env.FANOUT_JOB ?? '{}') as Job;
const HIST = 10_000;
let hist = new Uint32Array(HIST + 1);
let received = 0;
let missed = 0;
const lastSeq = new Int32Array(job.sockets).fill(-1);
const missedBy = new Uint8Array(job.sockets);
let open = 0;
let failed = 0;
const SEQ = /"trades":(\d+)/;
const TIME = /"timeMs":(\d+)/;
const lastClosed = new Float64Array(job.sockets);
let missedClosed = 0;
const AT = /"tradeReceivedMs":(\d+)/;
const now = () => performance.timeOrigin + performance.now();

function connect(i: number): Promise<void> {
  const s = job.series[(job.offset + i) % job.series.length]!;
  const url = job.urls[(job.offset + i) % job.urls.length]!;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['graphql-transport-ws'], { perMessageDeflate: false });
    ws.on('open', () =>
      ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${job.token}` } })),
    );
    ws.on('error', () => {
      failed++;
      resolve();
    });
    let acked = false;
    ws.on('close', () => {
      if (acked) open--;
      resolve();
    });
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.charCodeAt(2) === 105 /* {"id" */) {
        const at = AT.exec(text);
        const seq = SEQ.exec(text);
        if (!at || !seq) return;
        received++;
        const ms = Math.max(0, Math.round(now() - Number(at[1])));
        hist[Math.min(ms, HIST)]!++;
        if (text.includes('"closed":true')) {
          const t = Number(TIME.exec(text)?.[1] ?? 0);
          const before = lastClosed[i]!;
          if (before > 0 && t > before + 60_000) missedClosed += (t - before) / 60_000 - 1;
          if (t > before) lastClosed[i] = t;
          return;
        }
        const n = Number(seq[1]);
        const prev = lastSeq[i]!;
        if (prev >= 0 && n > prev + 1) {
          missed += n - prev - 1;
          missedBy[i] = 1;
        }
        if (n > prev) lastSeq[i] = n;
        return;
      }
      if (text.includes('connection_ack')) {
        acked = true;
        open++;
        ws.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: {
              query: `subscription { candles(exchange: "fan", symbol: "${s.symbol}", timeframe: "${s.timeframe}") { timeMs trades tradeReceivedMs closed } }`,
            },
          }),
        );
        resolve();
      }
    });
  });
}

for (let i = 0; i < job.sockets; i += 100)
  await Promise.all(Array.from({ length: Math.min(100, job.sockets - i) }, (_, k) => connect(i + k)));

process.on('message', (m: { type: string }) => {
  if (m.type === 'reset') {
    hist = new Uint32Array(HIST + 1);
    received = 0;
    missed = 0;
    missedClosed = 0;
    missedBy.fill(0);
  } else if (m.type === 'report') {
    process.send?.({
      type: 'report',
      hist: Array.from(hist),
      received,
      missed,
      missedClosed,
      subscribersMissing: missedBy.reduce((n, x) => n + x, 0),
      open,
      failed,
    });
  } else if (m.type === 'stop') process.exit(0);
});
process.send?.({ type: 'ready', open, failed });
