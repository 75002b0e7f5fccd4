/**
 * Alerts end to end: rules in `alert_rules` (loaded when the rules-changed control message
 * arrives), price paths that cross each condition, deliveries to a local webhook receiver that
 * verifies every HMAC signature. Each firing is recorded once and delivered once; a flaky
 * webhook (HTTP 500 three times) is retried with backoff until delivered, a dead one until the
 * attempts run out, and every attempt is counted. Then the worker is restarted with its symbol
 * actor rewound to an older snapshot (as if killed right after it) and the dispatcher's consumer
 * replaying every firing in EVENTS: nothing is recorded or delivered again, and later crossings
 * are delivered exactly once.
 *
 * The expected firings come from an independent evaluation of the closed 1m bars with
 * technicalindicators. Within each bar the price moves monotonically from the previous close,
 * so a condition seen on a forming bar also holds when the bar closes: forming and closed
 * evaluations agree on which bar fires, whatever the forming throttle let through.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { MACD, RSI, SMA } from 'technicalindicators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../actors/alerts/delivery.ts';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Config } from '../core/config.ts';
import { metrics } from '../core/metrics.ts';
import {
  type Bar,
  consumers,
  decodeJson,
  encodeJson,
  msgIds,
  STREAMS,
  stateKeys,
  subjects,
  type Trade,
} from '../core/protocol/index.ts';
import { parseSecretKey, sealSecret } from '../core/secret-box.ts';
import { type RoleHandle, startWorkerRole } from '../launcher/roles.ts';
import { eventually, TEST_AUTH, testLog, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'ALRT';
const START = Date.UTC(2024, 6, 1, 0, 0, 0);
const FLAKY_FAILURES = 3;
const MAX_ATTEMPTS = 5;

// ------------------------------------------------------------------ price path

/** Closes of consecutive 1m bars, in three phases, and the bars with a volume spike. */
function closes(): { c: number[]; phase2: number; phase3: number; spikes: Set<number> } {
  const c: number[] = [];
  let p = 100;
  const close = (x: number) => {
    p = Number(x.toFixed(4));
    c.push(p);
  };
  // A sideways market (MACD crosses now and then), a short decline, a rally with one +2.5 % bar.
  for (let i = 0; i < 40; i++) close(100 + 0.4 * Math.sin(i * 0.9) + 0.1 * Math.cos(i * 2.3));
  for (let i = 0; i < 8; i++) close(p * 0.994);
  for (let i = 0; i < 10; i++) close(p * (i === 6 ? 1.025 : 1.006));
  close(p); // each phase ends with a flat bar (it stays forming until the next phase)
  const phase2 = c.length;
  // The rally goes on through 105 and 110, with a volume spike on the way.
  for (let i = 0; i < 14; i++) close(p * 1.006);
  close(p);
  const phase3 = c.length;
  // A pullback below 105, and a second rally through 110.
  for (let i = 0; i < 14; i++) close(p * 0.994);
  for (let i = 0; i < 14; i++) close(p * 1.0075);
  close(p);
  return { c, phase2, phase3, spikes: new Set([phase2 + 5]) };
}

/** Four trades per bar, from the previous close to the bar's close in equal steps. */
function pathTrades(c: number[], spikes: Set<number>): Trade[] {
  const out: Trade[] = [];
  let prev = c[0]!;
  c.forEach((close, i) => {
    for (let j = 0; j < 4; j++)
      out.push({
        id: String(out.length + 1),
        ts: START + i * 60_000 + 2000 + j * 15_000,
        px: Number((prev + ((close - prev) * j) / 3).toFixed(4)),
        qty: spikes.has(i) ? 10 : 1,
        side: 'buy',
      });
    prev = close;
  });
  return out;
}

// ------------------------------------------------------------------ rules and their oracle

interface Rule {
  id: string;
  condition: 'PRICE_ABOVE' | 'RSI_ABOVE' | 'MACD_CROSS_UP' | 'VOLUME_SPIKE' | 'PCT_CHANGE';
  threshold: number;
  oneTime?: boolean;
  enabled?: boolean;
  /** Webhook path: `ok` answers 200, `flaky` 500 for the first attempts, `dead` always 500. */
  hook: 'ok' | 'flaky' | 'dead';
}

const RULES: Rule[] = [
  { id: 'price-110', condition: 'PRICE_ABOVE', threshold: 110, hook: 'ok' },
  { id: 'once-105', condition: 'PRICE_ABOVE', threshold: 105, oneTime: true, hook: 'ok' },
  { id: 'rsi-70', condition: 'RSI_ABOVE', threshold: 70, hook: 'ok' },
  { id: 'macd-up', condition: 'MACD_CROSS_UP', threshold: 0, hook: 'ok' },
  { id: 'vol-5x', condition: 'VOLUME_SPIKE', threshold: 5, hook: 'ok' },
  { id: 'pct-2', condition: 'PCT_CHANGE', threshold: 2, hook: 'ok' },
  { id: 'flaky-110', condition: 'PRICE_ABOVE', threshold: 110, hook: 'flaky' },
  { id: 'dead-110', condition: 'PRICE_ABOVE', threshold: 110, hook: 'dead' },
  { id: 'off-50', condition: 'PRICE_ABOVE', threshold: 50, enabled: false, hook: 'ok' },
];
const hookOf = (ruleId: string) => RULES.find((r) => r.id === ruleId)!.hook;

/**
 * Firing ids (`<rule>:1m:<bar open>:<n>`) over closed bars, computed independently: RSI, MACD
 * (12/26/9, EMA) and the volume SMA20 from technicalindicators; a rule fires when its condition
 * holds and it is armed, disarms, and re-arms once the condition is false.
 */
function expectedFirings(bars: readonly Bar[]): string[] {
  const n = bars.length;
  const close = bars.map((b) => b.c);
  const pad = <T>(xs: T[]) => [...new Array<null>(n - xs.length).fill(null), ...xs];
  const rsi = pad(RSI.calculate({ period: 14, values: close }));
  const hist = pad(
    MACD.calculate({
      values: close,
      fastPeriod: 12,
      slowPeriod: 26,
      signalPeriod: 9,
      SimpleMAOscillator: false,
      SimpleMASignal: false,
    }),
  ).map((m) => m?.histogram ?? null);
  const volSma = pad(SMA.calculate({ period: 20, values: bars.map((b) => b.vol) }));
  const ids: string[] = [];
  for (const rule of RULES.filter((r) => r.enabled !== false)) {
    let armed = true;
    let fired = 0;
    for (let i = 0; i < n && !(rule.oneTime && fired > 0); i++) {
      const b = bars[i]!;
      let holds: boolean | null = null;
      switch (rule.condition) {
        case 'PRICE_ABOVE':
          holds = b.c > rule.threshold;
          break;
        case 'PCT_CHANGE':
          holds = i > 0 ? Math.abs((b.c / bars[i - 1]!.c - 1) * 100) >= rule.threshold : null;
          break;
        case 'RSI_ABOVE':
          // The library rounds RSI to 2 decimals: the path must keep clear of the threshold.
          if (rsi[i] !== null && Math.abs(rsi[i]! - rule.threshold) < 0.02)
            throw new Error(`RSI ${rsi[i]} too close to ${rule.threshold} at bar ${i}`);
          holds = rsi[i] === null ? null : rsi[i]! > rule.threshold;
          break;
        case 'MACD_CROSS_UP':
          holds =
            i > 0 && hist[i - 1] !== null && hist[i] !== null ? hist[i - 1]! <= 0 && hist[i]! > 0 : null;
          break;
        case 'VOLUME_SPIKE':
          holds = volSma[i] ? b.vol / volSma[i]! >= rule.threshold : null;
          break;
      }
      if (holds === null) continue;
      if (!holds) armed = true;
      else if (armed) {
        armed = false;
        ids.push(`${rule.id}:1m:${b.t}:${++fired}`);
      }
    }
  }
  return ids.sort();
}

// ------------------------------------------------------------------ webhook receiver

interface Delivery {
  path: string;
  eventId: string;
  ruleId: string;
  status: number;
  signed: boolean;
  at: number;
}

const secretOf = (ruleId: string) => `secret-of-${ruleId}`;

/** A firing of a rule that has no channels (recorded, nothing to deliver). */
const EARLY = {
  v: 1,
  id: `early:1m:${START}:1`,
  ruleId: 'early',
  exchange: EX,
  symbol: SYM,
  timeframe: '1m',
  condition: 'PRICE_ABOVE',
  threshold: 1,
  value: 100,
  barT: START,
  closed: true,
  at: START + 59_000,
  seq: 1,
  final: false,
};

async function webhookReceiver(): Promise<{ server: Server; url: string; log: Delivery[] }> {
  const log: Delivery[] = [];
  const failures = new Map<string, number>();
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  const server = createServer(async (req, res) => {
    const body = await read(req);
    const { event } = JSON.parse(body) as { event: { id: string; ruleId: string } };
    const timestamp = String(req.headers['x-tickmesh-timestamp']);
    const signed =
      verifySignature(secretOf(event.ruleId), timestamp, body, String(req.headers['x-tickmesh-signature'])) &&
      req.headers['x-tickmesh-event-id'] === event.id &&
      Math.abs(Date.now() - Number(timestamp)) < 60_000;
    const path = req.url ?? '';
    let status = signed ? 200 : 401;
    if (path.endsWith('/dead')) status = 500;
    if (path.endsWith('/flaky')) {
      const failed = failures.get(event.id) ?? 0;
      if (failed < FLAKY_FAILURES) {
        failures.set(event.id, failed + 1);
        status = 500;
      }
    }
    log.push({ path, eventId: event.id, ruleId: event.ruleId, status, signed, at: Date.now() });
    res.statusCode = status;
    res.end(status === 200 ? 'ok' : 'no');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log };
}

// ------------------------------------------------------------------ the test

describe('alerts end to end', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;
  let worker: RoleHandle | null = null;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;

  beforeAll(async () => {
    hook = await webhookReceiver();
    // The worker is started (and restarted) by the test, in this process.
    sys = await startSystem({
      exchange: { id: EX, symbols: [SYM] },
      roles: ['supervisor'],
      config: {
        // Only the control message can make the actor see new rules within the test.
        analytics: { rulesRefreshMs: 600_000 },
        alerts: {
          backoffMs: 20,
          maxBackoffMs: 100,
          pollMs: 50,
          maxAttempts: MAX_ATTEMPTS,
          timeoutMs: 2000,
          // The receiver is a local http server: allow-listed, as an internal receiver would be.
          webhooks: { allow: [{ host: '127.0.0.1', http: true }] },
        },
      },
    });
    ({ db, cfg } = sys);
    // A firing stored in EVENTS before the dispatcher ever ran (a symbol actor on a faster
    // worker): the dispatcher's first consumer must not start after it.
    await using topo = await topology(cfg);
    await topo.js.publish(subjects.alert(EARLY.ruleId), encodeJson(EARLY), { msgID: msgIds.alert(EARLY.id) });
    worker = await startWorkerRole(cfg, testLog, undefined, 'w1');
  });

  afterAll(async () => {
    await worker?.stop();
    await sys?.stop();
    hook?.server.closeAllConnections();
    await new Promise((r) => hook?.server.close(r));
  });

  const health = async (topo: Awaited<ReturnType<typeof topology>>) => {
    const e = await topo.kv.health.get('symbol.test.ALRT');
    const rec = e?.operation === 'PUT' ? decodeJson(e.value) : null;
    return rec?.ok
      ? (rec.value as { status: string; sessionId: string; detail?: { alertRules?: number } })
      : null;
  };

  const events = async () =>
    (
      await db.pool.query<{ id: string }>(
        `SELECT id FROM alert_events WHERE rule_id <> 'early' ORDER BY id COLLATE "C"`,
      )
    ).rows.map((r) => r.id);

  it('records a firing published before the dispatcher first started', async () => {
    await eventually(async () => {
      const { rows } = await db.pool.query('SELECT id FROM alert_events WHERE id = $1', [EARLY.id]);
      return rows.length === 1;
    }, 'the early firing recorded');
  });

  /** Waits until exactly the expected firings are stored and every delivery is settled. */
  async function settled(want: string[], what: string) {
    await eventually(
      async () => (await events()).length >= want.length,
      `${what}: ${want.length} alert events`,
    );
    expect(await events()).toEqual(want);
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT 1 FROM alert_deliveries WHERE status = 'pending'`);
      return rows.length === 0;
    }, `${what}: deliveries settled`);
  }

  function checkDeliveries(want: string[]) {
    // Every request carried a valid signature.
    expect(hook.log.filter((d) => !d.signed)).toEqual([]);
    for (const id of want) {
      const ruleId = id.split(':')[0]!;
      const got = hook.log.filter((d) => d.eventId === id);
      const ok = got.filter((d) => d.status === 200).length;
      const failed = got.filter((d) => d.status === 500).length;
      const h = hookOf(ruleId);
      expect({ id, ok, failed }).toEqual({
        id,
        ok: h === 'dead' ? 0 : 1,
        failed: h === 'flaky' ? FLAKY_FAILURES : h === 'dead' ? MAX_ATTEMPTS : 0,
      });
      expect(got.every((d) => d.ruleId === ruleId && d.path === `/hook/${ruleId}/${h}`)).toBe(true);
    }
    expect(hook.log.filter((d) => !want.includes(d.eventId))).toEqual([]);
  }

  async function checkDeliveryRows(want: string[]) {
    const { rows } = await db.pool.query<{
      event_id: string;
      channel: string;
      status: string;
      attempts: number;
      last_error: string | null;
      delivered: boolean;
    }>(
      `SELECT event_id, channel, status, attempts, last_error, delivered_at IS NOT NULL AS delivered
         FROM alert_deliveries ORDER BY event_id COLLATE "C"`,
    );
    expect(rows.map((r) => r.event_id)).toEqual(want);
    for (const r of rows) {
      const h = hookOf(r.event_id.split(':')[0]!);
      expect(r).toEqual({
        event_id: r.event_id,
        channel: 'webhook',
        status: h === 'dead' ? 'failed' : 'delivered',
        attempts: h === 'dead' ? MAX_ATTEMPTS : h === 'flaky' ? FLAKY_FAILURES + 1 : 1,
        // A coarse reason: no address or port (lastError must not map a network).
        last_error: h === 'dead' ? 'HTTP 500' : null,
        delivered: h !== 'dead',
      });
    }
  }

  it('delivers each firing once, signed, retried with backoff, and never again after a restart', async () => {
    await using topo = await topology(cfg);
    const { c, phase2, phase3, spikes } = closes();
    const trades = pathTrades(c, spikes);
    const phase = [
      trades.slice(0, phase2 * 4),
      trades.slice(phase2 * 4, phase3 * 4),
      trades.slice(phase3 * 4),
    ];
    const firingsOf = (upTo: number) => expectedFirings(barsFromTrades(EX, SYM, '1m', trades.slice(0, upTo)));
    const want1 = firingsOf(phase2 * 4);
    const want2 = firingsOf(phase3 * 4);
    const want3 = firingsOf(trades.length);
    // Every condition fires, and the later phases add firings (the oneTime rule only once).
    for (const r of RULES.filter((x) => x.enabled !== false))
      expect(want3.some((id) => id.startsWith(`${r.id}:`))).toBe(true);
    expect(want1.length).toBeGreaterThan(0);
    expect(want2.length).toBeGreaterThan(want1.length);
    expect(want3.length).toBeGreaterThan(want2.length);
    expect(want3.filter((id) => id.startsWith('once-105:'))).toHaveLength(1);
    expect(want3.filter((id) => id.startsWith('price-110:'))).toHaveLength(2);

    // Rules go in while the symbol actor runs; the control message makes it load them.
    await eventually(async () => (await health(topo))?.status === 'running', 'symbol actor running');
    expect((await health(topo))?.detail?.alertRules).toBe(0);
    // Half the rules hold their webhook secret sealed, as stored today; half in plaintext, as
    // stored before secrets were encrypted. Every signature below must verify either way.
    const key = parseSecretKey(TEST_AUTH.secretKey);
    for (const [i, r] of RULES.entries())
      await db.pool.query(
        `INSERT INTO alert_rules (id, exchange, symbol, condition, threshold, one_time, enabled, channels)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          r.id,
          EX,
          SYM,
          r.condition,
          r.threshold,
          r.oneTime ?? false,
          r.enabled ?? true,
          {
            webhook: {
              url: `${hook.url}/hook/${r.id}/${r.hook}`,
              secret: i % 2 ? sealSecret(key, secretOf(r.id)) : secretOf(r.id),
            },
          },
        ],
      );
    topo.nc.publish(subjects.rulesChanged(EX, SYM));
    await eventually(
      async () => (await health(topo))?.detail?.alertRules === RULES.length - 1,
      'rules loaded after the control message',
    );

    // Phase 1: the sideways market and the first rally.
    await publishTrades(topo.js, EX, SYM, phase[0]!, 20);
    await settled(want1, 'phase 1');
    checkDeliveries(want1);
    await checkDeliveryRows(want1);
    // The resume point after phase 1 (everything in it applied and published).
    const lastSeq = async () => (await topo.jsm.streams.info(STREAMS.trades)).state.last_seq;
    const snapshotSeq = async () => {
      const e = await topo.kv.symbolState.get(stateKeys.symbol(EX, SYM));
      return e?.operation === 'PUT' ? (JSON.parse(e.string()) as { seq: number }).seq : -1;
    };
    const seq1 = await lastSeq();
    await eventually(async () => (await snapshotSeq()) === seq1, 'snapshot after phase 1');
    const snapshot1 = (await topo.kv.symbolState.get(stateKeys.symbol(EX, SYM)))!.value;

    // Phase 2: through 105 (oneTime) and 110 (three rules: ok, flaky, dead webhooks), a volume spike.
    await publishTrades(topo.js, EX, SYM, phase[1]!, 20);
    await settled(want2, 'phase 2');
    checkDeliveries(want2);
    await checkDeliveryRows(want2);
    expect(hook.log.filter((d) => d.ruleId === 'flaky-110')).toHaveLength(FLAKY_FAILURES + 1);
    const requests = hook.log.length;

    // Restart: the symbol actor resumes from the phase-1 snapshot (as if killed just after it)
    // and replays phase 2; the dispatcher's consumer starts over at the first firing in EVENTS.
    await worker!.stop();
    worker = null;
    await topo.kv.symbolState.put(stateKeys.symbol(EX, SYM), snapshot1);
    await topo.jsm.consumers.delete(STREAMS.events, consumers.alertDispatcher);
    await topo.jsm.consumers.add(STREAMS.events, {
      durable_name: consumers.alertDispatcher,
      filter_subject: subjects.alertAll,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(60_000),
      deliver_policy: DeliverPolicy.All,
    });
    worker = await startWorkerRole(cfg, testLog, undefined, 'w1');
    // Replayed: the snapshot moves past phase 2 only once every firing of the replay is stored
    // (or found a duplicate), and the dispatcher has then acknowledged every firing it holds.
    const seq2 = await lastSeq();
    await eventually(async () => (await snapshotSeq()) === seq2, 'phase 2 replayed', 30_000);
    await eventually(async () => {
      const info = await topo.jsm.consumers.info(STREAMS.events, consumers.alertDispatcher);
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq > 0;
    }, 'dispatcher replayed every firing');
    await settled(want2, 'after the restart');
    expect(hook.log.length).toBe(requests);

    // Phase 3: a pullback and a second rally; new crossings are delivered exactly once.
    await publishTrades(topo.js, EX, SYM, phase[2]!, 20);
    await settled(want3, 'phase 3');
    checkDeliveries(want3);
    await checkDeliveryRows(want3);

    // The attempts in the metrics: failures retried, the dead webhook given up on.
    const count = async (outcome: string) =>
      (await metrics.alertDeliveries.get()).values
        .filter((v) => v.labels.channel === 'webhook' && v.labels.outcome === outcome)
        .reduce((n, v) => n + v.value, 0);
    const dead = want3.filter((id) => hookOf(id.split(':')[0]!) === 'dead').length;
    const flakyEvents = want3.filter((id) => hookOf(id.split(':')[0]!) === 'flaky').length;
    expect(await count('failed')).toBe(dead);
    expect(await count('retry')).toBe(dead * (MAX_ATTEMPTS - 1) + flakyEvents * FLAKY_FAILURES);
    expect(await count('delivered')).toBe(want3.length - dead);
  });
});
