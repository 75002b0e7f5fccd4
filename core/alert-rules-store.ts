/**
 * Alert rules (`alert_rules` table): the one module that knows its columns and maps its rows,
 * for the GraphQL API (list, create, update, delete), the symbol actor (the enabled rules of its
 * symbol) and the alert dispatcher (where a rule's firings go). What is written is validated by
 * the caller first: the evaluator's rule schema lives in analytics/, which core does not import.
 */
import type pg from 'pg';
import { inTransaction, type Pool } from './db.ts';
import { isSealed } from './secret-box.ts';

/**
 * Where a rule's firings are delivered. The webhook secret is for signing, never for display;
 * it is stored sealed (core/secret-box.ts): callers seal it before writing, open it to sign.
 */
export interface RuleChannels {
  webhook?: { url: string; secret: string };
  slack?: { url: string };
  email?: { to: string };
}

/** What the evaluator needs of a rule: the input of analytics' `alertRuleSchema`. */
export interface AlertRuleSettings {
  id: string;
  exchange: string;
  symbol: string;
  timeframe: string;
  /** One of analytics' ALERT_CONDITIONS (the column has the same CHECK constraint). */
  condition: string;
  threshold: number;
  cooldownMs: number;
  oneTime: boolean;
  enabled: boolean;
}

export interface StoredAlertRule {
  rule: AlertRuleSettings;
  /** The user who created the rule (null for rules from before users existed). */
  owner: string | null;
  channels: RuleChannels;
  note: string | null;
  createdAt: Date;
}

/** A rule to write, already validated: its settings (timeframe defaults to 1m), channels and note. */
export interface AlertRuleWrite {
  rule: Omit<AlertRuleSettings, 'id' | 'timeframe'> & { timeframe?: string | undefined };
  channels: RuleChannels;
  note: string | null;
}

/** A pool, or a client inside a transaction. */
type Queryable = Pick<pg.ClientBase, 'query'>;

/** A row as pg returns it: the settings' text and number columns keep their names. */
type RuleRow = Pick<
  AlertRuleSettings,
  'id' | 'exchange' | 'symbol' | 'timeframe' | 'condition' | 'threshold'
> & {
  /** bigint: a string from pg, unless core/db.ts's int8 parser is loaded. */
  cooldown_ms: string | number;
  one_time: boolean;
  enabled: boolean;
  channels: RuleChannels;
  note: string | null;
  owner: string | null;
  created_at: Date;
};

const RULE_COLUMNS =
  'id, exchange, symbol, timeframe, condition, threshold, cooldown_ms, one_time, enabled, channels, note, owner, created_at';

function ruleOf(r: RuleRow): StoredAlertRule {
  return {
    rule: {
      id: r.id,
      exchange: r.exchange,
      symbol: r.symbol,
      timeframe: r.timeframe,
      condition: r.condition,
      threshold: r.threshold,
      cooldownMs: Number(r.cooldown_ms),
      oneTime: r.one_time,
      enabled: r.enabled,
    },
    channels: r.channels,
    note: r.note,
    owner: r.owner,
    createdAt: r.created_at,
  };
}

/** Parameters $1…$11 of the INSERT and UPDATE statements, in column order. */
function writeParams(id: string, { rule, channels, note }: AlertRuleWrite): unknown[] {
  return [
    id,
    rule.exchange,
    rule.symbol,
    rule.timeframe ?? '1m',
    rule.condition,
    rule.threshold,
    rule.cooldownMs,
    rule.oneTime,
    rule.enabled,
    JSON.stringify(channels),
    note,
  ];
}

/** Rules in creation order; every filter left out (or null) matches all. */
export async function listAlertRules(
  pool: Pool,
  filter: {
    exchange?: string | null;
    symbol?: string | null;
    enabled?: boolean | null;
    owner?: string | null;
  } = {},
): Promise<StoredAlertRule[]> {
  const { rows } = await pool.query<RuleRow>(
    `SELECT ${RULE_COLUMNS} FROM alert_rules
      WHERE ($1::text IS NULL OR exchange = $1) AND ($2::text IS NULL OR symbol = $2)
        AND ($3::boolean IS NULL OR enabled = $3) AND ($4::text IS NULL OR owner = $4)
      ORDER BY created_at, id`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.enabled ?? null, filter.owner ?? null],
  );
  return rows.map(ruleOf);
}

export async function readAlertRule(pool: Pool, id: string): Promise<StoredAlertRule | null> {
  const { rows } = await pool.query<RuleRow>(`SELECT ${RULE_COLUMNS} FROM alert_rules WHERE id = $1`, [id]);
  return rows[0] ? ruleOf(rows[0]) : null;
}

export async function insertAlertRule(
  pool: Pool,
  id: string,
  write: AlertRuleWrite,
  owner: string | null = null,
): Promise<StoredAlertRule> {
  const { rows } = await pool.query<RuleRow>(
    `INSERT INTO alert_rules (id, exchange, symbol, timeframe, condition, threshold, cooldown_ms, one_time, enabled,
                              channels, note, owner)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${RULE_COLUMNS}`,
    [...writeParams(id, write), owner],
  );
  return ruleOf(rows[0]!);
}

/** Replaces a rule's settings (its crossing state lives in the actor); null when there is no such rule. */
export async function updateAlertRule(
  pool: Pool,
  id: string,
  write: AlertRuleWrite,
): Promise<StoredAlertRule | null> {
  const { rows } = await pool.query<RuleRow>(
    `UPDATE alert_rules SET exchange = $2, symbol = $3, timeframe = $4, condition = $5, threshold = $6,
            cooldown_ms = $7, one_time = $8, enabled = $9, channels = $10, note = $11, updated_at = now()
      WHERE id = $1 RETURNING ${RULE_COLUMNS}`,
    writeParams(id, write),
  );
  return rows[0] ? ruleOf(rows[0]) : null;
}

/** Deletes a rule; returns the symbol it belonged to, or null when there was no such rule. */
export async function deleteAlertRule(
  pool: Pool,
  id: string,
): Promise<{ exchange: string; symbol: string } | null> {
  const { rows } = await pool.query<{ exchange: string; symbol: string }>(
    'DELETE FROM alert_rules WHERE id = $1 RETURNING exchange, symbol',
    [id],
  );
  return rows[0] ?? null;
}

/** Who owns a rule: undefined for no such rule, null for a rule without an owner. */
export async function readRuleOwner(db: Queryable, ruleId: string): Promise<string | null | undefined> {
  const { rows } = await db.query<{ owner: string | null }>('SELECT owner FROM alert_rules WHERE id = $1', [
    ruleId,
  ]);
  return rows[0] ? rows[0].owner : undefined;
}

/** Where a rule's firings go; none for a rule that no longer exists. */
export async function readRuleChannels(db: Queryable, ruleId: string): Promise<RuleChannels> {
  const { rows } = await db.query<{ channels: RuleChannels }>(
    'SELECT channels FROM alert_rules WHERE id = $1',
    [ruleId],
  );
  return rows[0]?.channels ?? {};
}

/** Channels and note of each rule that still exists, by id (for delivering its queued firings). */
export async function readRuleDeliveryInfo(
  db: Queryable,
  ruleIds: readonly string[],
): Promise<Map<string, { channels: RuleChannels; note: string | null }>> {
  if (ruleIds.length === 0) return new Map();
  const { rows } = await db.query<{ id: string; channels: RuleChannels; note: string | null }>(
    'SELECT id, channels, note FROM alert_rules WHERE id = ANY($1::text[])',
    [[...ruleIds]],
  );
  return new Map(rows.map((r) => [r.id, { channels: r.channels, note: r.note }]));
}

/**
 * Seals every webhook secret not yet sealed (`isSealed` false) with `seal`; returns how many
 * rules changed. Row-locked, so concurrent roles starting up seal each row once.
 */
export async function sealWebhookSecrets(pool: Pool, seal: (plaintext: string) => string): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ id: string; secret: string }>(
      `SELECT id, channels->'webhook'->>'secret' AS secret FROM alert_rules
        WHERE channels->'webhook'->>'secret' IS NOT NULL FOR UPDATE`,
    );
    let changed = 0;
    for (const r of rows) {
      if (isSealed(r.secret)) continue;
      await client.query(
        `UPDATE alert_rules SET channels = jsonb_set(channels, '{webhook,secret}', to_jsonb($2::text)) WHERE id = $1`,
        [r.id, seal(r.secret)],
      );
      changed++;
    }
    return changed;
  });
}
