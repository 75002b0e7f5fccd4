/**
 * AlertDispatcher (`alerts.dispatcher`, one per system): consumes alert firings from EVENTS
 * (`md.alert.<ruleId>`, published by symbol actors with the firing id as Nats-Msg-Id) through a
 * durable consumer, records each in `alert_events` once (the deterministic firing id is the
 * primary key, so a replay after a restart stores nothing new), queues one delivery per channel
 * of the rule in `alert_deliveries`, and delivers them with exponential backoff until they
 * succeed or run out of attempts; every attempt's outcome is recorded. A message is acked only
 * after its rows committed; deliveries survive restarts because they live in the database.
 *
 * Deliveries run concurrently (`alerts.webhooks.concurrency` in all, `perHostConcurrency` per
 * receiver host), so a slow or silent receiver holds only its own slots and delays no other
 * rule; a delivery in flight is never picked up a second time. Every URL passes the outbound
 * policy again before each attempt (core/outbound-policy.ts), and `last_error` records a coarse
 * reason only ("refused by policy", "timeout", "connection failed", "HTTP 503").
 */
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { createTransport, type Transporter } from 'nodemailer';
import { readRuleChannels, readRuleDeliveryInfo } from '../../core/alert-rules-store.ts';
import { every } from '../../core/clock.ts';
import type { Config } from '../../core/config.ts';
import { inTransaction, type Pool } from '../../core/db.ts';
import { ConsumerEndedError, DeliveryError } from '../../core/errors.ts';
import { metrics } from '../../core/metrics.ts';
import { infoOrNull, type Topology } from '../../core/nats.ts';
import { OutboundPolicy } from '../../core/outbound-policy.ts';
import {
  type AlertFiringMessage,
  alertFiringSchema,
  consumers,
  decodeWith,
  STREAMS,
  subjects,
} from '../../core/protocol/index.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import { isSealed, openSecret, parseSecretKey, type SecretKey } from '../../core/secret-box.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import {
  type AlertEventPayload,
  CHANNEL_NAMES,
  type ChannelName,
  type Channels,
  deliver,
} from './delivery.ts';

interface Due {
  event_id: string;
  channel: ChannelName;
  attempts: number;
  channels: Channels;
  note: string | null;
  rule_id: string;
  exchange: string;
  symbol: string;
  timeframe: string;
  condition: string;
  threshold: number;
  value: number;
  bar_ts: Date;
  closed_bar: boolean;
  fired_at: Date;
}

/** Rows read per look for due deliveries. */
const BATCH = 50;

/** The receiver a delivery goes to, for the per-host limit: host:port of its URL, or the channel. */
function receiverOf(d: Due): string {
  const url =
    d.channel === 'webhook' ? d.channels.webhook?.url : d.channel === 'slack' ? d.channels.slack?.url : null;
  if (!url) return d.channel;
  try {
    return new URL(url).host;
  } catch {
    return d.channel;
  }
}

export class AlertDispatcherActor implements ActorBehavior {
  private waiter: (() => void) | null = null;
  private woken = false;
  private readonly mailer: Transporter | null;
  private readonly secretKey: SecretKey | null;
  private readonly policy: OutboundPolicy;
  /** Deliveries being attempted, as [event id, channel], and how many go to each receiver host. */
  private readonly inFlight = new Map<string, [string, ChannelName]>();
  private readonly perHost = new Map<string, number>();
  private readonly attempts = new Set<Promise<void>>();

  constructor(private readonly deps: { topo: Topology; cfg: Config; pool: Pool }) {
    const url = deps.cfg.alerts.smtpUrl;
    this.mailer = url ? createTransport(url) : null;
    this.secretKey = deps.cfg.auth.secretKey ? parseSecretKey(deps.cfg.auth.secretKey) : null;
    this.policy = new OutboundPolicy(deps.cfg.alerts.webhooks);
  }

  /** Makes the delivery loop look for due deliveries now (also when it is busy right now). */
  private wake(): void {
    this.woken = true;
    this.waiter?.();
  }

  async run(ctx: ActorContext): Promise<void> {
    const { topo } = this.deps;
    await retryFor(30_000).execute(() => this.openConsumer(), ctx.signal);
    const consumer = await topo.js.consumers.get(STREAMS.events, consumers.alertDispatcher);
    const messages = await consumer.consume({ max_messages: 100 });
    const onAbort = () => {
      messages.stop();
      this.wake();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const dbRetry = retryForever(200, 5000);
    const deliveries = this.deliveryLoop(ctx);
    ctx.ready();
    try {
      for await (const msg of messages) {
        const firing = decodeWith(alertFiringSchema, msg.data);
        if (!firing.ok) {
          ctx.log.warn({ subject: msg.subject, error: firing.error }, 'dropping a malformed alert firing');
          msg.term();
          continue;
        }
        const working = every(ctx.clock, 10_000, () => msg.working());
        try {
          await dbRetry.execute(() => this.record(firing.value), ctx.signal);
        } finally {
          working.stop();
        }
        msg.ack();
        ctx.markEvent();
        this.wake();
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      messages.stop();
      this.wake();
      await deliveries;
      this.mailer?.close();
    }
    if (!ctx.signal.aborted) throw new ConsumerEndedError('alert');
  }

  private async openConsumer(): Promise<void> {
    const { jsm } = this.deps.topo;
    const existing = await infoOrNull(jsm.consumers.info(STREAMS.events, consumers.alertDispatcher));
    if (existing) return;
    await jsm.consumers.add(STREAMS.events, {
      durable_name: consumers.alertDispatcher,
      filter_subject: subjects.alertAll,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(60_000),
      // From the first firing kept: symbol actors may publish before this consumer first
      // exists (another worker, a slower start), and alert_events' key drops repeats anyway.
      deliver_policy: DeliverPolicy.All,
    });
  }

  /** Stores the firing once and queues its deliveries (one transaction). */
  private async record(f: AlertFiringMessage): Promise<void> {
    await inTransaction(this.deps.pool, async (client) => {
      const inserted = await client.query(
        `INSERT INTO alert_events (id, rule_id, exchange, symbol, timeframe, bar_ts, condition, threshold, value,
                                   closed_bar, fired_at)
         VALUES ($1, $2, $3, $4, $5, to_timestamp($6 / 1000.0), $7, $8, $9, $10, to_timestamp($11 / 1000.0))
         ON CONFLICT (id) DO NOTHING`,
        [
          f.id,
          f.ruleId,
          f.exchange,
          f.symbol,
          f.timeframe,
          f.barT,
          f.condition,
          f.threshold,
          f.value,
          f.closed,
          f.at,
        ],
      );
      if ((inserted.rowCount ?? 0) > 0) {
        metrics.alertsFired.inc({ condition: f.condition });
        const channels = await readRuleChannels(client, f.ruleId);
        const names = CHANNEL_NAMES.filter((c) => channels[c]);
        if (names.length)
          await client.query(
            `INSERT INTO alert_deliveries (event_id, channel, status) SELECT $1, unnest($2::text[]), 'pending'
             ON CONFLICT DO NOTHING`,
            [f.id, names],
          );
      }
    });
  }

  /**
   * Starts due deliveries until the actor stops, within the concurrency limits; sleeps until
   * woken (a new firing, an attempt finished) or the next poll. Attempts in flight when it stops
   * finish (each is bounded by alerts.timeoutMs) and are recorded.
   */
  private async deliveryLoop(ctx: ActorContext): Promise<void> {
    const cfg = this.deps.cfg.alerts;
    const { concurrency, perHostConcurrency } = cfg.webhooks;
    while (!ctx.signal.aborted) {
      this.woken = false;
      let more = false;
      try {
        const due = await this.due(ctx.clock.now(), perHostConcurrency);
        let started = 0;
        for (const d of due) {
          if (ctx.signal.aborted || this.attempts.size >= concurrency) break;
          const host = receiverOf(d);
          if ((this.perHost.get(host) ?? 0) >= perHostConcurrency) continue;
          this.start(d, host, ctx);
          started++;
        }
        more = due.length >= BATCH && started > 0 && this.attempts.size < concurrency;
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'alert deliveries: database unavailable; retrying');
      }
      if (more || this.woken) continue;
      await new Promise<void>((resolve) => {
        const t = ctx.clock.setTimeout(() => resolve(), cfg.pollMs);
        this.waiter = () => {
          ctx.clock.clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
    await Promise.allSettled([...this.attempts]);
  }

  /** Runs one attempt in the background, holding its slots until it is recorded. */
  private start(d: Due, host: string, ctx: ActorContext): void {
    const key = `${d.event_id}\n${d.channel}`;
    this.inFlight.set(key, [d.event_id, d.channel]);
    this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1);
    const attempt = this.attempt(d, ctx)
      .catch((err) => {
        // Recording failed (database down): the row stays pending and is attempted again.
        ctx.log.warn({ err: (err as Error).message }, 'alert delivery: outcome not recorded; will retry');
      })
      .finally(() => {
        this.inFlight.delete(key);
        const n = (this.perHost.get(host) ?? 1) - 1;
        if (n > 0) this.perHost.set(host, n);
        else this.perHost.delete(host);
        this.attempts.delete(attempt);
        this.wake();
      });
    this.attempts.add(attempt);
  }

  /**
   * Due deliveries not in flight, oldest first, at most `perRule` of each rule and channel: one
   * rule's backlog (a dead receiver) cannot fill the batch and hide every other rule's.
   */
  private async due(now: number, perRule: number): Promise<Due[]> {
    const flying = [...this.inFlight.values()];
    const { rows } = await this.deps.pool.query<Omit<Due, 'channels' | 'note'>>(
      `SELECT event_id, channel, attempts, rule_id, exchange, symbol, timeframe, condition, threshold, value,
              bar_ts, closed_bar, fired_at
         FROM (SELECT d.event_id, d.channel, d.attempts, d.next_attempt_at,
                      e.rule_id, e.exchange, e.symbol, e.timeframe, e.condition, e.threshold, e.value, e.bar_ts,
                      e.closed_bar, e.fired_at,
                      row_number() OVER (PARTITION BY e.rule_id, d.channel ORDER BY d.next_attempt_at) AS n
                 FROM alert_deliveries d
                 JOIN alert_events e ON e.id = d.event_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= to_timestamp($1 / 1000.0)
                  AND (d.event_id, d.channel) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))) due
        WHERE n <= $4
        ORDER BY next_attempt_at
        LIMIT ${BATCH}`,
      [now, flying.map(([e]) => e), flying.map(([, c]) => c), perRule],
    );
    // A rule deleted since its firing has no channels left: its queued deliveries fail and are recorded.
    const rules = await readRuleDeliveryInfo(this.deps.pool, [...new Set(rows.map((r) => r.rule_id))]);
    return rows.map((r) => {
      const info = rules.get(r.rule_id);
      return { ...r, note: info?.note ?? null, channels: this.opened(info?.channels ?? {}) };
    });
  }

  /**
   * The channels with the webhook secret opened for signing (sealed at rest). A secret that does
   * not open (no or another TICKMESH_SECRET_KEY) leaves the rule without a webhook, so that
   * delivery fails and is recorded instead of being signed with the wrong key.
   */
  private opened(channels: Channels): Channels {
    const webhook = channels.webhook;
    if (!webhook || !isSealed(webhook.secret)) return channels;
    const { webhook: _, ...others } = channels;
    if (!this.secretKey) return others;
    try {
      return { ...channels, webhook: { ...webhook, secret: openSecret(this.secretKey, webhook.secret) } };
    } catch {
      return others;
    }
  }

  private async attempt(d: Due, ctx: ActorContext): Promise<void> {
    const cfg = this.deps.cfg.alerts;
    const clock = ctx.clock;
    const event: AlertEventPayload = {
      id: d.event_id,
      ruleId: d.rule_id,
      exchange: d.exchange,
      symbol: d.symbol,
      timeframe: d.timeframe,
      condition: d.condition,
      threshold: d.threshold,
      value: d.value,
      barTime: d.bar_ts.toISOString(),
      closedBar: d.closed_bar,
      firedAt: d.fired_at.toISOString(),
      note: d.note,
    };
    const attempts = d.attempts + 1;
    try {
      await deliver(d.channel, d.channels, event, {
        timeoutMs: cfg.timeoutMs,
        connectTimeoutMs: cfg.webhooks.connectTimeoutMs,
        maxResponseBytes: cfg.webhooks.maxResponseBytes,
        policy: this.policy,
        mailer: this.mailer,
        from: cfg.from,
        now: () => clock.now(),
      });
      await this.deps.pool.query(
        `UPDATE alert_deliveries SET status = 'delivered', attempts = $3, delivered_at = now(), last_error = NULL,
                updated_at = now() WHERE event_id = $1 AND channel = $2`,
        [d.event_id, d.channel, attempts],
      );
      metrics.alertDeliveries.inc({ channel: d.channel, outcome: 'delivered' });
    } catch (err) {
      const failed = attempts >= cfg.maxAttempts;
      // The stored reason is coarse (users read it); the detail goes to the operator's log only.
      const reason = err instanceof DeliveryError ? err.message : 'delivery failed';
      const cause = err instanceof DeliveryError ? err.cause : err;
      if (cause)
        ctx.log.info(
          { rule: d.rule_id, channel: d.channel, err: (cause as Error).message },
          `alert delivery failed: ${reason}`,
        );
      // Exponential backoff with full jitter, capped.
      const delay = Math.random() * Math.min(cfg.maxBackoffMs, cfg.backoffMs * 2 ** (attempts - 1));
      await this.deps.pool.query(
        `UPDATE alert_deliveries SET status = $3, attempts = $4, last_error = $5,
                next_attempt_at = now() + make_interval(secs => $6 / 1000.0), updated_at = now()
          WHERE event_id = $1 AND channel = $2`,
        [d.event_id, d.channel, failed ? 'failed' : 'pending', attempts, reason.slice(0, 500), delay],
      );
      metrics.alertDeliveries.inc({ channel: d.channel, outcome: failed ? 'failed' : 'retry' });
    }
  }
}
