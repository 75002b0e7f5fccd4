/**
 * GraphQL resolvers for per-symbol analytics: quality, ML features (range and latest), alert
 * rules (CRUD), alert events with their deliveries, and the live `alerts` subscription.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ALERT_CONDITIONS, alertRuleSchema, FEATURE_VERSION, QUALITY_CHECKS } from '../analytics/index.ts';
import {
  type AlertRuleWrite,
  deleteAlertRule,
  insertAlertRule,
  listAlertRules,
  type RuleChannels,
  readAlertRule,
  type StoredAlertRule,
  updateAlertRule,
} from '../core/alert-rules-store.ts';
import type { Pool } from '../core/db.ts';
import {
  BadArgumentError,
  ForbiddenError,
  NotFoundError,
  OutboundRefusedError,
  shownInput,
} from '../core/errors.ts';
import type { Topology } from '../core/nats.ts';
import type { OutboundPolicy } from '../core/outbound-policy.ts';
import {
  type AlertFiringMessage,
  decodeJson,
  stateKeys,
  subjects,
  type Timeframe,
} from '../core/protocol/index.ts';
import { assertSymbolExists } from '../core/symbols-store.ts';
import type { Caller } from './callers.ts';
import { checkLimit } from './candles.ts';
import type {
  AlertCondition,
  AlertDelivery,
  AlertEvent,
  AlertFiring,
  AlertRule,
  FeatureRow,
  Quality,
} from './generated/schema-types.ts';
import type { TopicHub } from './topic-hub.ts';

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/**
 * A condition read back (a rule, an event, a firing) was checked against ALERT_CONDITIONS when
 * the rule was written, and the column has the same CHECK constraint.
 */
const storedCondition = (c: string) => c as AlertCondition;

// ---------------------------------------------------------------- quality

export async function readQuality(
  pool: Pool,
  exchange: string,
  symbol: string,
  minutes: number | null | undefined,
): Promise<Quality> {
  const span = minutes ?? 60;
  if (!Number.isInteger(span) || span < 1 || span > 10_080)
    throw new BadArgumentError('minutes', 'must be an integer in [1, 10080]');
  const { rows } = await pool.query(
    `SELECT ts, trades, accepted, checks, score FROM data_quality_metrics
      WHERE exchange = $1 AND symbol = $2
        AND ts > (SELECT max(ts) FROM data_quality_metrics WHERE exchange = $1 AND symbol = $2)
                 - make_interval(mins => $3)
      ORDER BY ts`,
    [exchange, symbol, span],
  );
  const latest = await pool.query(
    `SELECT ts, score FROM data_quality_metrics WHERE exchange = $1 AND symbol = $2 ORDER BY ts DESC LIMIT 1`,
    [exchange, symbol],
  );
  const counts = new Map<string, { quarantined: number; flagged: number }>();
  let trades = 0;
  let accepted = 0;
  for (const r of rows) {
    trades += r.trades;
    accepted += r.accepted;
    for (const [check, c] of Object.entries(
      r.checks as Record<string, { quarantined: number; flagged: number }>,
    )) {
      const sum = counts.get(check) ?? { quarantined: 0, flagged: 0 };
      sum.quarantined += c.quarantined;
      sum.flagged += c.flagged;
      counts.set(check, sum);
    }
  }
  return {
    exchange,
    symbol,
    score: latest.rows[0]?.score ?? null,
    trades,
    accepted,
    checks: QUALITY_CHECKS.map((check) => ({
      check,
      ...(counts.get(check) ?? { quarantined: 0, flagged: 0 }),
    })),
    updatedAt: iso(latest.rows[0]?.ts),
  };
}

// ---------------------------------------------------------------- features

export interface FeatureQuery {
  exchange: string;
  symbol: string;
  timeframe: Timeframe;
  from: number | null;
  to: number | null;
  limit: number;
  version: number | null | undefined;
}

function featureRow(
  exchange: string,
  symbol: string,
  timeframe: string,
  t: number,
  version: number,
  values: unknown,
): FeatureRow {
  return {
    exchange,
    symbol,
    timeframe,
    time: new Date(t).toISOString(),
    timeMs: t,
    featureVersion: version,
    values,
  };
}

export async function readFeatures(pool: Pool, q: FeatureQuery): Promise<FeatureRow[]> {
  const version = q.version ?? FEATURE_VERSION;
  const where = 'exchange = $1 AND symbol = $2 AND timeframe = $3 AND feature_version = $4';
  const params: unknown[] = [q.exchange, q.symbol, q.timeframe, version, q.limit];
  let sql: string;
  if (q.from !== null) {
    params.push(new Date(q.from), q.to === null ? null : new Date(q.to));
    sql = `SELECT ts, features FROM ml_features WHERE ${where} AND ts >= $6 AND ($7::timestamptz IS NULL OR ts < $7)
           ORDER BY ts LIMIT $5`;
  } else {
    params.push(q.to === null ? null : new Date(q.to));
    sql = `SELECT * FROM (SELECT ts, features FROM ml_features WHERE ${where} AND ($6::timestamptz IS NULL OR ts < $6)
           ORDER BY ts DESC LIMIT $5) newest ORDER BY ts`;
  }
  const { rows } = await pool.query(sql, params);
  return rows.map((r) => featureRow(q.exchange, q.symbol, q.timeframe, r.ts.getTime(), version, r.features));
}

export async function readLatestFeatures(
  topo: Topology,
  exchange: string,
  symbol: string,
  timeframe: Timeframe,
): Promise<FeatureRow | null> {
  const e = await topo.kv.featuresLatest.get(stateKeys.features(exchange, symbol, timeframe));
  if (e?.operation !== 'PUT') return null;
  const parsed = decodeJson(e.value);
  if (!parsed.ok) return null;
  const v = parsed.value as { t: number; v: number; tf?: string };
  const { tf: _tf, ...values } = v;
  return featureRow(exchange, symbol, timeframe, v.t, v.v, values);
}

// ---------------------------------------------------------------- alert rules

const ruleInputSchema = z
  .object({
    exchange: z.string().min(1),
    symbol: z.string().min(1),
    timeframe: z.string().nullish(),
    condition: z.enum(ALERT_CONDITIONS),
    threshold: z.number().finite(),
    cooldownMs: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400_000)
      .nullish(),
    oneTime: z.boolean().nullish(),
    enabled: z.boolean().nullish(),
    webhook: z
      .object({
        url: z.url({ protocol: /^https?$/ }),
        secret: z.string().min(16, 'use a secret of at least 16 characters'),
      })
      .nullish(),
    slackUrl: z.url({ protocol: /^https?$/ }).nullish(),
    email: z.email().nullish(),
    note: z.string().max(500).nullish(),
  })
  .strict();
export type AlertRuleInput = z.input<typeof ruleInputSchema>;

/** The GraphQL view of a stored rule: secrets are never returned. */
function ruleOut({ rule, channels, note, owner, createdAt }: StoredAlertRule): AlertRule {
  return {
    ...rule,
    condition: storedCondition(rule.condition),
    webhookUrl: channels.webhook?.url ?? null,
    slackUrl: channels.slack?.url ?? null,
    email: channels.email?.to ?? null,
    owner,
    note,
    createdAt: createdAt.toISOString(),
  };
}

/** Validates the input with the evaluator's own rule schema, so a stored rule always loads. */
function checkRule(id: string, raw: unknown): AlertRuleWrite {
  const parsed = ruleInputSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BadArgumentError(`input.${issue.path.join('.')}`, issue.message);
  }
  const i = parsed.data;
  const rule = alertRuleSchema.safeParse({
    id,
    exchange: i.exchange,
    symbol: i.symbol,
    timeframe: i.timeframe ?? '1m',
    condition: i.condition,
    threshold: i.threshold,
    cooldownMs: i.cooldownMs ?? 0,
    oneTime: i.oneTime ?? false,
    enabled: i.enabled ?? true,
  });
  if (!rule.success) {
    const issue = rule.error.issues[0]!;
    throw new BadArgumentError(`input.${issue.path.join('.')}`, issue.message);
  }
  const channels: RuleChannels = {};
  if (i.webhook) channels.webhook = i.webhook;
  if (i.slackUrl) channels.slack = { url: i.slackUrl };
  if (i.email) channels.email = { to: i.email };
  return { rule: rule.data, channels, note: i.note ?? null };
}

/** The write with its webhook secret sealed for storage. */
function sealed(write: AlertRuleWrite, seal: (plaintext: string) => string): AlertRuleWrite {
  const webhook = write.channels.webhook;
  if (!webhook) return write;
  return { ...write, channels: { ...write.channels, webhook: { ...webhook, secret: seal(webhook.secret) } } };
}

/** Whose rules a caller may see and change: their own, or every rule for an admin (null). */
export function ownerScope(caller: Caller): string | null {
  return caller.role === 'admin' ? null : caller.username;
}

export class AlertRulesApi {
  constructor(
    private readonly pool: Pool,
    private readonly topo: Topology,
    /** Encrypts a webhook secret for storage (core/secret-box.ts). */
    private readonly seal: (plaintext: string) => string,
    /** Where webhooks may go (checked here, and again before every delivery). */
    private readonly outbound: OutboundPolicy,
  ) {}

  /** TM_ERR_OUTBOUND_REFUSED for a webhook or Slack URL the outbound policy refuses. */
  private async checkOutbound({ webhook, slack }: RuleChannels): Promise<void> {
    const urls: [string, string | undefined][] = [
      ['input.webhook.url', webhook?.url],
      ['input.slackUrl', slack?.url],
    ];
    for (const [field, url] of urls) {
      if (!url) continue;
      try {
        await this.outbound.admit(url);
      } catch (e) {
        if (e instanceof OutboundRefusedError) throw new OutboundRefusedError(e.reason, field);
        throw e;
      }
    }
  }

  async list(caller: Caller, exchange?: string | null, symbol?: string | null): Promise<AlertRule[]> {
    return (await listAlertRules(this.pool, { exchange, symbol, owner: ownerScope(caller) })).map(ruleOut);
  }

  /** The rule, if the caller may change it; TM_ERR_FORBIDDEN for another user's rule. */
  private async ownRule(caller: Caller, id: string): Promise<StoredAlertRule | null> {
    const rule = await readAlertRule(this.pool, id);
    const scope = ownerScope(caller);
    if (rule && scope !== null && rule.owner !== scope)
      throw new ForbiddenError(`alert rule ${shownInput(id)} belongs to another user`);
    return rule;
  }

  async create(caller: Caller, input: unknown): Promise<AlertRule> {
    const id = `r-${randomUUID()}`;
    const checked = checkRule(id, input);
    const { rule } = checked;
    await assertSymbolExists(this.pool, rule.exchange, rule.symbol);
    await this.checkOutbound(checked.channels);
    const created = await insertAlertRule(this.pool, id, sealed(checked, this.seal), caller.username);
    this.changed(rule.exchange, rule.symbol);
    return ruleOut(created);
  }

  async update(caller: Caller, id: string, input: unknown): Promise<AlertRule> {
    const checked = checkRule(id, input);
    const { rule } = checked;
    await assertSymbolExists(this.pool, rule.exchange, rule.symbol);
    const before = await this.ownRule(caller, id);
    if (!before) throw new NotFoundError(`no alert rule ${shownInput(id)}`);
    await this.checkOutbound(checked.channels);
    const updated = await updateAlertRule(this.pool, id, sealed(checked, this.seal));
    this.changed(before.rule.exchange, before.rule.symbol);
    this.changed(rule.exchange, rule.symbol);
    return ruleOut(updated!);
  }

  async delete(caller: Caller, id: string): Promise<boolean> {
    if (!(await this.ownRule(caller, id))) return false;
    const deleted = await deleteAlertRule(this.pool, id);
    if (deleted) this.changed(deleted.exchange, deleted.symbol);
    return deleted !== null;
  }

  /** Tells the symbol's actor to reload its rules now (it also polls). */
  private changed(exchange: string, symbol: string): void {
    try {
      this.topo.nc.publish(subjects.rulesChanged(exchange, symbol));
    } catch {
      // An unencodable symbol has no actor to tell.
    }
  }
}

// ---------------------------------------------------------------- alert events

/** Firings, newest first: of the rules `owner` owns, or of every rule when owner is null. */
export async function readAlertEvents(
  pool: Pool,
  a: { ruleId?: string | null; exchange?: string | null; symbol?: string | null; limit?: number | null },
  owner: string | null,
): Promise<AlertEvent[]> {
  const limit = checkLimit(a.limit, 100, 1000);
  const { rows } = await pool.query(
    `SELECT e.*, coalesce(json_agg(json_build_object(
              'channel', d.channel, 'status', d.status, 'attempts', d.attempts, 'lastError', d.last_error,
              'deliveredAt', d.delivered_at)) FILTER (WHERE d.event_id IS NOT NULL), '[]') AS deliveries
       FROM alert_events e LEFT JOIN alert_deliveries d ON d.event_id = e.id
      WHERE ($1::text IS NULL OR e.rule_id = $1) AND ($2::text IS NULL OR e.exchange = $2)
        AND ($3::text IS NULL OR e.symbol = $3)
        AND ($5::text IS NULL OR e.rule_id IN (SELECT id FROM alert_rules WHERE owner = $5))
      GROUP BY e.id ORDER BY e.fired_at DESC, e.id LIMIT $4`,
    [a.ruleId ?? null, a.exchange ?? null, a.symbol ?? null, limit, owner],
  );
  return rows.map((r) => ({
    id: r.id,
    ruleId: r.rule_id,
    exchange: r.exchange,
    symbol: r.symbol,
    timeframe: r.timeframe,
    condition: storedCondition(r.condition),
    threshold: r.threshold,
    value: r.value,
    barTime: r.bar_ts.toISOString(),
    closedBar: r.closed_bar,
    firedAt: r.fired_at.toISOString(),
    deliveries: (r.deliveries as AlertDelivery[]).map((d) => ({
      ...d,
      deliveredAt: d.deliveredAt ? new Date(d.deliveredAt).toISOString() : null,
    })),
  }));
}

// ---------------------------------------------------------------- subscription

/**
 * Live firings, filtered per subscriber (one shared NATS subscription for everyone). Not an
 * async generator: a generator's return() waits until its pending `await` settles, which for a
 * quiet alert subject is never, so a closed subscription would keep its hub subscriber forever.
 * This iterator's return() releases the hub subscriber at once.
 */
export function alertStream(
  hub: TopicHub,
  filter: { exchange?: string | null; symbol?: string | null; ruleId?: string | null },
  /** Whether the subscriber may see a rule's firings (a trader: their own rules only). */
  maySee: (ruleId: string) => Promise<boolean> = async () => true,
): AsyncIterableIterator<AlertFiring> {
  const source = hub.subscribe<AlertFiringMessage>(subjects.alertAll, (_subject, data) => {
    const parsed = decodeJson(data);
    return parsed.ok ? { value: parsed.value as AlertFiringMessage, coalesceKey: null } : null;
  });
  const wanted = async (f: AlertFiringMessage) =>
    (!filter.exchange || f.exchange === filter.exchange) &&
    (!filter.symbol || f.symbol === filter.symbol) &&
    (!filter.ruleId || f.ruleId === filter.ruleId) &&
    (await maySee(f.ruleId));
  const iterator: AsyncIterableIterator<AlertFiring> = {
    async next(): Promise<IteratorResult<AlertFiring>> {
      for (;;) {
        const r = await source.next();
        if (r.done) return { value: undefined, done: true };
        const f = r.value;
        if (await wanted(f)) return { value: firingOut(f), done: false };
      }
    },
    async return(): Promise<IteratorResult<AlertFiring>> {
      await source.return?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

function firingOut(f: AlertFiringMessage): AlertFiring {
  return {
    id: f.id,
    ruleId: f.ruleId,
    exchange: f.exchange,
    symbol: f.symbol,
    timeframe: f.timeframe,
    condition: storedCondition(f.condition),
    threshold: f.threshold,
    value: f.value,
    barTime: new Date(f.barT).toISOString(),
    closedBar: f.closed,
    firedAt: new Date(f.at).toISOString(),
  };
}
