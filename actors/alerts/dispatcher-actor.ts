/**
 * AlertDispatcher (`alerts.dispatcher`, one per system): consumes alert firings from EVENTS
 * (`md.alert.<ruleId>`, published by symbol actors with the firing id as Nats-Msg-Id) through a
 * durable consumer, records each in `alert_events` once (the deterministic firing id is the
 * primary key, so a replay after a restart stores nothing new), queues one delivery per channel
 * of the rule in `alert_deliveries`, and delivers them with exponential backoff until they
 * succeed or run out of attempts; every attempt's outcome is recorded. A message is acked only
 * after its rows committed; deliveries survive restarts because they live in the database.
 */
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { createTransport, type Transporter } from 'nodemailer';
import { readRuleChannels, readRuleDeliveryInfo } from '../../core/alert-rules-store.ts';
import { type Clock, every } from '../../core/clock.ts';
import type { Config } from '../../core/config.ts';
import { inTransaction, type Pool } from '../../core/db.ts';
import { ConsumerEndedError } from '../../core/errors.ts';
import { metrics } from '../../core/metrics.ts';
import { infoOrNull, type Topology } from '../../core/nats.ts';
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

export class AlertDispatcherActor implements ActorBehavior {
  private wake: (() => void) | null = null;
  private readonly mailer: Transporter | null;
  private readonly secretKey: SecretKey | null;

  constructor(private readonly deps: { topo: Topology; cfg: Config; pool: Pool }) {
    const url = deps.cfg.alerts.smtpUrl;
    this.mailer = url ? createTransport(url) : null;
    this.secretKey = deps.cfg.auth.secretKey ? parseSecretKey(deps.cfg.auth.secretKey) : null;
  }

  async run(ctx: ActorContext): Promise<void> {
    const { topo } = this.deps;
    await retryFor(30_000).execute(() => this.openConsumer(), ctx.signal);
    const consumer = await topo.js.consumers.get(STREAMS.events, consumers.alertDispatcher);
    const messages = await consumer.consume({ max_messages: 100 });
    const onAbort = () => {
      messages.stop();
      this.wake?.();
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
        this.wake?.();
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      messages.stop();
      this.wake?.();
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

  /** Delivers due deliveries until the actor stops; sleeps until woken or the next poll. */
  private async deliveryLoop(ctx: ActorContext): Promise<void> {
    const cfg = this.deps.cfg.alerts;
    while (!ctx.signal.aborted) {
      let due: Due[] = [];
      try {
        due = await this.due(ctx.clock.now());
        for (const d of due) {
          if (ctx.signal.aborted) break;
          await this.attempt(d, ctx.clock);
        }
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'alert deliveries: database unavailable; retrying');
      }
      if (due.length >= 50) continue;
      await new Promise<void>((resolve) => {
        const t = ctx.clock.setTimeout(() => resolve(), cfg.pollMs);
        this.wake = () => {
          ctx.clock.clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private async due(now: number): Promise<Due[]> {
    const { rows } = await this.deps.pool.query<Omit<Due, 'channels' | 'note'>>(
      `SELECT d.event_id, d.channel, d.attempts,
              e.rule_id, e.exchange, e.symbol, e.timeframe, e.condition, e.threshold, e.value, e.bar_ts,
              e.closed_bar, e.fired_at
         FROM alert_deliveries d
         JOIN alert_events e ON e.id = d.event_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= to_timestamp($1 / 1000.0)
        ORDER BY d.next_attempt_at
        LIMIT 50`,
      [now],
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

  private async attempt(d: Due, clock: Clock): Promise<void> {
    const cfg = this.deps.cfg.alerts;
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
      // Exponential backoff with full jitter, capped.
      const delay = Math.random() * Math.min(cfg.maxBackoffMs, cfg.backoffMs * 2 ** (attempts - 1));
      await this.deps.pool.query(
        `UPDATE alert_deliveries SET status = $3, attempts = $4, last_error = $5,
                next_attempt_at = now() + make_interval(secs => $6 / 1000.0), updated_at = now()
          WHERE event_id = $1 AND channel = $2`,
        [
          d.event_id,
          d.channel,
          failed ? 'failed' : 'pending',
          attempts,
          (err as Error).message.slice(0, 500),
          delay,
        ],
      );
      metrics.alertDeliveries.inc({ channel: d.channel, outcome: failed ? 'failed' : 'retry' });
    }
  }
}
