/**
 * Alert delivery to the channels of a rule: a JSON webhook signed with HMAC-SHA256, a
 * Slack-compatible webhook ({text}), and email over SMTP when configured. Each call makes one
 * attempt and throws on failure; retries, backoff and bookkeeping are the dispatcher's.
 *
 * Webhook signature (verify with `verifySignature`): header `X-Tickmesh-Signature:
 * sha256=<hex>` where hex = HMAC-SHA256(secret, `${X-Tickmesh-Timestamp}.${raw body}`); the
 * timestamp (epoch ms) is signed too, so a receiver can refuse replays of old requests.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Transporter } from 'nodemailer';
import { DeliveryError } from '../../core/errors.ts';
import type { CheckedTarget, OutboundPolicy } from '../../core/outbound-policy.ts';
import { postJson } from './webhook-client.ts';

export interface AlertEventPayload {
  id: string;
  ruleId: string;
  exchange: string;
  symbol: string;
  timeframe: string;
  condition: string;
  threshold: number;
  value: number;
  barTime: string;
  closedBar: boolean;
  firedAt: string;
  note?: string | null;
}

export interface Channels {
  webhook?: { url: string; secret: string };
  slack?: { url: string };
  email?: { to: string };
}

export type ChannelName = keyof Channels;
export const CHANNEL_NAMES: readonly ChannelName[] = ['webhook', 'slack', 'email'];

export function sign(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function verifySignature(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(sign(secret, timestamp, body));
  const got = Buffer.from(signature);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

export function describe(e: AlertEventPayload): string {
  const side = e.closedBar ? 'closed' : 'forming';
  return `${e.condition} ${e.exchange} ${e.symbol} ${e.timeframe}: ${e.value.toPrecision(6)} vs ${e.threshold} (${side} bar ${e.barTime})`;
}

/**
 * POSTs JSON to a URL the outbound policy lets through (checked now, connected to the checked
 * address); failures carry coarse reasons only (see webhook-client.ts).
 */
async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  deps: DeliveryDeps,
): Promise<void> {
  let target: CheckedTarget;
  try {
    target = await deps.policy.check(url);
  } catch (e) {
    throw new DeliveryError('refused by policy', { cause: e });
  }
  await postJson(target, body, headers, {
    connectTimeoutMs: deps.connectTimeoutMs,
    totalTimeoutMs: deps.timeoutMs,
    maxResponseBytes: deps.maxResponseBytes,
    signal: deps.signal,
  });
}

export interface DeliveryDeps {
  /** Total time of one attempt. */
  timeoutMs: number;
  connectTimeoutMs: number;
  maxResponseBytes: number;
  policy: OutboundPolicy;
  mailer: Transporter | null;
  from: string;
  now: () => number;
  signal?: AbortSignal | undefined;
}

export async function deliver(
  channel: ChannelName,
  channels: Channels,
  event: AlertEventPayload,
  deps: DeliveryDeps,
): Promise<void> {
  switch (channel) {
    case 'webhook': {
      const c = channels.webhook;
      if (!c) throw new DeliveryError('no webhook configured');
      const body = JSON.stringify({ type: 'alert', event });
      const timestamp = String(deps.now());
      await post(
        c.url,
        body,
        {
          'x-tickmesh-event-id': event.id,
          'x-tickmesh-timestamp': timestamp,
          'x-tickmesh-signature': sign(c.secret, timestamp, body),
        },
        deps,
      );
      return;
    }
    case 'slack': {
      const c = channels.slack;
      if (!c) throw new DeliveryError('no slack webhook configured');
      await post(c.url, JSON.stringify({ text: `:rotating_light: ${describe(event)}` }), {}, deps);
      return;
    }
    case 'email': {
      const c = channels.email;
      if (!c) throw new DeliveryError('no email recipient configured');
      if (!deps.mailer) throw new DeliveryError('email is not configured (set alerts.smtpUrl / SMTP_URL)');
      try {
        await deps.mailer.sendMail({
          from: deps.from,
          to: c.to,
          subject: `[tickmesh] ${event.condition} ${event.exchange} ${event.symbol}`,
          text: `${describe(event)}\n\nrule ${event.ruleId}, event ${event.id}, fired ${event.firedAt}\n`,
        });
      } catch (e) {
        throw new DeliveryError('email could not be sent', { cause: e });
      }
      return;
    }
  }
}
