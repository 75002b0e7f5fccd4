/**
 * Every message on the wire: one TypeScript type and one runtime validator each.
 * Hot-path messages (trade batches, bars) have hand-written validators; the rest use zod.
 * Validators never throw on bad input: they return a result, so callers can quarantine.
 */
import { z } from 'zod';
import { HIGHER_TIMEFRAMES, isTimeframe, TIMEFRAMES, type Timeframe } from './timeframes.ts';

export const SCHEMA_VERSION = 1 as const;

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = <T>(error: string): Result<T> => ({ ok: false, error });

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isObj = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

// ---------------------------------------------------------------- trades

export type Side = 'buy' | 'sell';

export interface Trade {
  /** Exchange trade id (string: exchanges disagree on id types). */
  id: string;
  /** Exchange timestamp, epoch ms UTC. */
  ts: number;
  px: number;
  qty: number;
  side?: Side;
}

export interface TradeBatch {
  v: typeof SCHEMA_VERSION;
  ex: string;
  sym: string;
  /** Consecutive trades of one symbol, in exchange order. */
  trades: Trade[];
  /** How the trades were obtained (default live): quality checks judge freshness by it. */
  source?: TradeSource;
}

export type TradeSource = 'live' | 'repair' | 'replay';

export const MAX_TRADES_PER_BATCH = 5000;

/** Checks one trade's shape and values; returns a reason or null. */
export function tradeProblem(t: unknown): string | null {
  if (!isObj(t)) return 'trade is not an object';
  if (typeof t.id !== 'string' || t.id.length === 0 || t.id.length > 128)
    return 'id must be a non-empty string';
  if (!isNum(t.ts) || !Number.isInteger(t.ts)) return 'ts must be an integer epoch ms';
  if (!isNum(t.px) || t.px <= 0) return 'px must be a finite number > 0';
  if (!isNum(t.qty) || t.qty < 0) return 'qty must be a finite number >= 0';
  if (t.side !== undefined && t.side !== 'buy' && t.side !== 'sell') return 'side must be buy or sell';
  return null;
}

/**
 * Validates the envelope. Individual bad trades do not reject the batch: they come back in
 * `rejected` so the caller can quarantine them and keep the good ones.
 */
export function validateTradeBatch(
  x: unknown,
): Result<{ batch: TradeBatch; rejected: { trade: unknown; reason: string }[] }> {
  if (!isObj(x)) return fail('message is not an object');
  if (x.v !== SCHEMA_VERSION) return fail(`unsupported schema version ${String(x.v)}`);
  if (typeof x.ex !== 'string' || typeof x.sym !== 'string') return fail('ex and sym must be strings');
  if (!Array.isArray(x.trades) || x.trades.length === 0) return fail('trades must be a non-empty array');
  if (x.trades.length > MAX_TRADES_PER_BATCH)
    return fail(`more than ${MAX_TRADES_PER_BATCH} trades in one batch`);
  if (x.source !== undefined && x.source !== 'live' && x.source !== 'repair' && x.source !== 'replay')
    return fail('source must be live, repair or replay');
  const good: Trade[] = [];
  const rejected: { trade: unknown; reason: string }[] = [];
  for (const t of x.trades) {
    const problem = tradeProblem(t);
    if (problem) rejected.push({ trade: t, reason: problem });
    else good.push(t as Trade);
  }
  const batch: TradeBatch = { v: SCHEMA_VERSION, ex: x.ex, sym: x.sym, trades: good };
  if (x.source !== undefined) batch.source = x.source as TradeSource;
  return ok({ batch, rejected });
}

/** A completed 1m bar from a source without trades (Yahoo chart data). `t` is the minute's open. */
export interface SourceBar {
  t: number;
  o: number;
  h: number;
  l: number;
  c: number;
  vol: number;
}

/** Source bars of one symbol, on the same subject as its trades (one consumer sees both, in order). */
export interface SourceBarBatch {
  v: typeof SCHEMA_VERSION;
  ex: string;
  sym: string;
  bars: SourceBar[];
}

/**
 * A window the exchange actor could not repair (the exchange's history no longer reaches it):
 * bars overlapping [from, to) are marked incomplete rather than silently left short.
 */
export interface GapMark {
  v: typeof SCHEMA_VERSION;
  ex: string;
  sym: string;
  gap: { from: number; to: number; reason: string };
}

export type FeedMessage =
  | { kind: 'trades'; batch: TradeBatch; rejected: { trade: unknown; reason: string }[] }
  | { kind: 'bars'; batch: SourceBarBatch; rejected: { bar: unknown; reason: string }[] }
  | { kind: 'gap'; mark: GapMark };

function sourceBarProblem(b: unknown): string | null {
  if (!isObj(b)) return 'bar is not an object';
  for (const k of ['t', 'o', 'h', 'l', 'c', 'vol'] as const)
    if (!isNum(b[k])) return `${k} must be a finite number`;
  const { t, o, h, l, c, vol } = b as unknown as SourceBar;
  if (t % 60_000 !== 0) return 't must be minute-aligned';
  if (!(l > 0 && l <= o && o <= h && l <= c && c <= h)) return 'OHLC out of order or not positive';
  if (vol < 0) return 'vol must be >= 0';
  return null;
}

/** Anything on a `md.trade.<ex>.<sym>` subject: a trade batch, a source-bar batch or a gap mark. */
export function validateFeedMessage(x: unknown): Result<FeedMessage> {
  if (isObj(x) && 'bars' in x) {
    if (x.v !== SCHEMA_VERSION) return fail(`unsupported schema version ${String(x.v)}`);
    if (typeof x.ex !== 'string' || typeof x.sym !== 'string') return fail('ex and sym must be strings');
    if (!Array.isArray(x.bars) || x.bars.length === 0) return fail('bars must be a non-empty array');
    if (x.bars.length > MAX_TRADES_PER_BATCH)
      return fail(`more than ${MAX_TRADES_PER_BATCH} bars in one batch`);
    const good: SourceBar[] = [];
    const rejected: { bar: unknown; reason: string }[] = [];
    for (const b of x.bars) {
      const problem = sourceBarProblem(b);
      if (problem) rejected.push({ bar: b, reason: problem });
      else good.push(b as SourceBar);
    }
    return ok({ kind: 'bars', batch: { v: SCHEMA_VERSION, ex: x.ex, sym: x.sym, bars: good }, rejected });
  }
  if (isObj(x) && 'gap' in x) {
    if (x.v !== SCHEMA_VERSION) return fail(`unsupported schema version ${String(x.v)}`);
    if (typeof x.ex !== 'string' || typeof x.sym !== 'string') return fail('ex and sym must be strings');
    const g = x.gap;
    if (!isObj(g) || !isNum(g.from) || !isNum(g.to) || !(g.from < g.to) || typeof g.reason !== 'string')
      return fail('gap must be {from < to, reason}');
    return ok({ kind: 'gap', mark: x as unknown as GapMark });
  }
  const r = validateTradeBatch(x);
  return r.ok ? ok({ kind: 'trades', ...r.value }) : r;
}

// ---------------------------------------------------------------- bars

export interface Bar {
  v: typeof SCHEMA_VERSION;
  ex: string;
  sym: string;
  tf: Timeframe;
  /** Open time, epoch ms UTC, aligned to tf. */
  t: number;
  o: number;
  h: number;
  l: number;
  c: number;
  vol: number;
  /** Number of trades. */
  n: number;
  closed: boolean;
  /** 0 for the first closed version; +1 per revision (late trade, backfill). */
  rev: number;
  /** Empty buckets between the previous bar of this series and this one. */
  gap: number;
  /** Timestamps of the first and last trade in the bar (exchange clock). */
  ft: number;
  lt: number;
  /** Built from source bars (Yahoo chart data), not from trades. */
  src?: true;
  /**
   * When the newest trade in this bar's state reached the bus (the TRADES stored time of its
   * message, wall ms): clients measure trade → client latency from it. Absent on older messages.
   */
  nt?: number;
  /** Part of the bar's window could not be repaired after a feed outage. */
  inc?: true;
  /** Indicator values as of this bar (analytics/indicators.ts IndicatorValues; null = not enough history). */
  ind?: Record<string, number | null>;
  /** ML features as of this bar (analytics/features.ts FeatureRow, carries its version `v`). */
  feat?: Record<string, unknown>;
  /** On a first-version closed 1m bar: data quality of the trades judged since the previous report. */
  q?: QualityReport;
}

export interface QualityReport {
  trades: number;
  accepted: number;
  /** Per check: trades quarantined and trades only flagged. */
  checks: Record<string, { quarantined: number; flagged: number }>;
  /** The symbol's quality score in [0, 1] at the end of the period. */
  score: number;
}

/**
 * Indicator/feature values of an already closed bar that changed because an older bar was
 * revised (subject `md.bar.ind.<tf>.<ex>.<sym>`, in BARS; the bar itself did not change).
 */
export interface AnalyticsUpdate {
  v: typeof SCHEMA_VERSION;
  ex: string;
  sym: string;
  tf: Timeframe;
  t: number;
  ind: Record<string, number | null>;
  feat?: Record<string, unknown>;
}

export function validateAnalyticsUpdate(x: unknown): Result<AnalyticsUpdate> {
  if (!isObj(x)) return fail('update is not an object');
  if (x.v !== SCHEMA_VERSION) return fail(`unsupported schema version ${String(x.v)}`);
  if (typeof x.ex !== 'string' || typeof x.sym !== 'string') return fail('ex and sym must be strings');
  if (typeof x.tf !== 'string' || !isTimeframe(x.tf))
    return fail(`tf must be one of ${TIMEFRAMES.join(' ')}`);
  if (!isNum(x.t)) return fail('t must be a finite number');
  if (!isObj(x.ind)) return fail('ind must be an object');
  if (x.feat !== undefined && !isObj(x.feat)) return fail('feat must be an object');
  return ok(x as unknown as AnalyticsUpdate);
}

export function barProblem(b: Bar): string | null {
  if (!(b.l <= b.o && b.o <= b.h && b.l <= b.c && b.c <= b.h)) return 'OHLC out of order';
  if (!(b.vol >= 0) || !(b.n >= 0)) return 'negative volume or count';
  return null;
}

export function validateBar(x: unknown): Result<Bar> {
  if (!isObj(x)) return fail('bar is not an object');
  if (x.v !== SCHEMA_VERSION) return fail(`unsupported schema version ${String(x.v)}`);
  if (typeof x.ex !== 'string' || typeof x.sym !== 'string') return fail('ex and sym must be strings');
  if (typeof x.tf !== 'string' || !isTimeframe(x.tf))
    return fail(`tf must be one of ${TIMEFRAMES.join(' ')}`);
  for (const k of ['t', 'o', 'h', 'l', 'c', 'vol', 'n', 'rev', 'gap', 'ft', 'lt'] as const) {
    if (!isNum(x[k])) return fail(`${k} must be a finite number`);
  }
  if (typeof x.closed !== 'boolean') return fail('closed must be a boolean');
  if (x.src !== undefined && x.src !== true) return fail('src must be true or absent');
  if (x.nt !== undefined && !isNum(x.nt)) return fail('nt must be a finite number or absent');
  if (x.inc !== undefined && x.inc !== true) return fail('inc must be true or absent');
  if (x.ind !== undefined && !isObj(x.ind)) return fail('ind must be an object');
  if (x.feat !== undefined && !isObj(x.feat)) return fail('feat must be an object');
  if (
    x.q !== undefined &&
    !(isObj(x.q) && isNum(x.q.trades) && isNum(x.q.accepted) && isNum(x.q.score) && isObj(x.q.checks))
  )
    return fail('q must be a quality report');
  const bar = x as unknown as Bar;
  const problem = barProblem(bar);
  return problem ? fail(problem) : ok(bar);
}

// ---------------------------------------------------------------- zod-validated messages

export const ACTOR_KINDS = ['exchange', 'symbol', 'writer', 'alerts'] as const;
export type ActorKind = (typeof ACTOR_KINDS)[number];

export const EXCHANGE_KINDS = ['sim', 'ccxt', 'yahoo', 'replay', 'external'] as const;
export type ExchangeKind = (typeof EXCHANGE_KINDS)[number];

/** Exchange kinds whose feed publishes 1m source bars instead of trades (Yahoo chart data). */
export const SOURCE_BAR_EXCHANGE_KINDS: readonly ExchangeKind[] = Object.freeze(['yahoo']);

const actorId = z.string().min(1);

/** One exchange actor: publishes the trades of its active symbols. */
export const exchangeActorSpecSchema = z
  .object({
    id: actorId,
    kind: z.literal('exchange'),
    exchange: z.string(),
    exchangeKind: z.enum(EXCHANGE_KINDS),
    /** The active symbols it publishes. */
    symbols: z.array(z.string()),
    /** The adapter options (`exchanges.options`, see core/exchanges-config.ts); absent when empty. */
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type ExchangeActorSpec = z.infer<typeof exchangeActorSpecSchema>;

/** One symbol actor: quality, bars, indicators, features and alerts of one symbol. */
export const symbolActorSpecSchema = z
  .object({
    id: actorId,
    kind: z.literal('symbol'),
    exchange: z.string(),
    symbol: z.string(),
    /** Its exchange's kind (whether source bars may come); absent in older assignments. */
    exchangeKind: z.enum(EXCHANGE_KINDS).optional(),
  })
  .strict();
export type SymbolActorSpec = z.infer<typeof symbolActorSpecSchema>;

/**
 * What a worker runs, keyed by `kind` (the JSON in KV `actor-assign`). Field order is the wire
 * order: specs are compared as JSON to decide whether an assignment changed.
 */
export const actorSpecSchema = z.discriminatedUnion('kind', [
  exchangeActorSpecSchema,
  symbolActorSpecSchema,
  z.object({ id: actorId, kind: z.literal('writer') }).strict(),
  z.object({ id: actorId, kind: z.literal('alerts') }).strict(),
]);
export type ActorSpec = z.infer<typeof actorSpecSchema>;

export const ACTOR_STATUSES = ['starting', 'running', 'stopping', 'stopped', 'failed'] as const;
export type ActorStatusName = (typeof ACTOR_STATUSES)[number];

export const actorHealthSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    id: z.string(),
    kind: z.enum(ACTOR_KINDS),
    status: z.enum(ACTOR_STATUSES),
    exchange: z.string().optional(),
    symbol: z.string().optional(),
    worker: z.string(),
    sessionId: z.string(),
    startedAt: z.number(),
    lastEventAt: z.number().nullable(),
    processed: z.number(),
    restarts: z.number().int(),
    updatedAt: z.number(),
    error: z.string().optional(),
    detail: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type ActorHealth = z.infer<typeof actorHealthSchema>;

export const assignmentSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    worker: z.string(),
    spec: actorSpecSchema,
    /** Revision of the leader lease that wrote this assignment. */
    epoch: z.number(),
    assignedAt: z.number(),
  })
  .strict();
export type Assignment = z.infer<typeof assignmentSchema>;

export const workerRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    id: z.string(),
    host: z.string(),
    pid: z.number(),
    startedAt: z.number(),
    updatedAt: z.number(),
    draining: z.boolean().default(false),
  })
  .strict();
export type WorkerRecord = z.infer<typeof workerRecordSchema>;

export const leaderRecordSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    id: z.string(),
    host: z.string(),
    pid: z.number(),
    since: z.number(),
    renewedAt: z.number(),
  })
  .strict();
export type LeaderRecord = z.infer<typeof leaderRecordSchema>;

export const ACTOR_EVENTS = ['started', 'stopped', 'crashed', 'restarted', 'failed'] as const;
export const actorEventSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    id: z.string(),
    event: z.enum(ACTOR_EVENTS),
    sessionId: z.string(),
    worker: z.string(),
    at: z.number(),
    restarts: z.number().int(),
    error: z.string().optional(),
  })
  .strict();
export type ActorEvent = z.infer<typeof actorEventSchema>;

export const quarantineSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    ex: z.string(),
    sym: z.string(),
    reason: z.string(),
    source: z.string(),
    at: z.number(),
    payload: z.unknown(),
  })
  .strict();
export type Quarantined = z.infer<typeof quarantineSchema>;

export function validateWith<T>(schema: z.ZodType<T>, x: unknown): Result<T> {
  const r = schema.safeParse(x);
  return r.success ? ok(r.data) : fail(z.prettifyError(r.error).replaceAll('\n', '; '));
}

// ---------------------------------------------------------------- codec

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses JSON without throwing. */
export function decodeJson(data: Uint8Array): Result<unknown> {
  try {
    return ok(JSON.parse(decoder.decode(data)));
  } catch (e) {
    return fail(`not JSON: ${(e as Error).message}`);
  }
}

/** Decodes JSON bytes and validates them against a schema, without throwing. */
export function decodeWith<T>(schema: z.ZodType<T>, data: Uint8Array): Result<T> {
  const parsed = decodeJson(data);
  return parsed.ok ? validateWith(schema, parsed.value) : parsed;
}

/** An alert firing on `md.alert.<ruleId>` (analytics/alerts.ts AlertFiring plus the schema version). */
export const alertFiringSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1).max(300),
  ruleId: z.string().min(1),
  exchange: z.string(),
  symbol: z.string(),
  timeframe: z.string(),
  condition: z.string(),
  threshold: z.number(),
  value: z.number(),
  barT: z.number(),
  closed: z.boolean(),
  at: z.number(),
  seq: z.number().int(),
  final: z.boolean(),
});
export type AlertFiringMessage = z.infer<typeof alertFiringSchema>;

// ---------------------------------------------------------------- symbol snapshots (KV symbol-state)

/** OHLCV of one bucket inside the bar builder's state; `t` is the bucket's open time. */
const ohlcvStateSchema = z
  .object({
    t: z.number(),
    o: z.number(),
    h: z.number(),
    l: z.number(),
    c: z.number(),
    vol: z.number(),
    n: z.number(),
    ft: z.number(),
    lt: z.number(),
    src: z.literal(true).optional(),
    inc: z.literal(true).optional(),
  })
  .strict();
export type OhlcvState = z.infer<typeof ohlcvStateSchema>;

const closedBarStateSchema = z
  .object({ bar: ohlcvStateSchema, rev: z.number().int(), gap: z.number() })
  .strict();
export type ClosedBarState = z.infer<typeof closedBarStateSchema>;

type HigherTimeframe = (typeof HIGHER_TIMEFRAMES)[number];
const higherTimeframeSchema = z.enum(HIGHER_TIMEFRAMES as [HigherTimeframe, ...HigherTimeframe[]]);

/**
 * The bar builder's whole state (analytics/bar-builder.ts). Strict, so a field the builder gains
 * without this schema following fails the snapshot round-trip test instead of being dropped.
 */
const barBuilderStateSchema = z
  .object({
    ex: z.string(),
    sym: z.string(),
    forming: z.array(ohlcvStateSchema),
    agg: z.partialRecord(higherTimeframeSchema, ohlcvStateSchema),
    // JSON has no infinities: the empty state's -Infinity is written as null.
    watermark: z
      .number()
      .nullable()
      .transform((w) => w ?? Number.NEGATIVE_INFINITY),
    exClock: z.number().nullable(),
    recent1m: z.array(closedBarStateSchema),
    lastClosed: z.partialRecord(higherTimeframeSchema, closedBarStateSchema),
    recentIds: z.array(z.string()),
    idHead: z.number().int().nonnegative().optional(),
  })
  .strict();
export type BarBuilderState = z.infer<typeof barBuilderStateSchema>;

/**
 * A symbol actor's resume point in KV `symbol-state`: the bar builder's state and the TRADES
 * sequence it reflects, plus the analytics state (checked in depth where it is restored; a
 * snapshot with unreadable analytics still restores the bars).
 */
export const symbolSnapshotSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    /** Last TRADES stream sequence reflected in `state`. */
    seq: z.number().int().nonnegative(),
    state: barBuilderStateSchema,
    analytics: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type SymbolSnapshot = z.infer<typeof symbolSnapshotSchema>;

export function validateSymbolSnapshot(x: unknown): Result<SymbolSnapshot> {
  return validateWith(symbolSnapshotSchema, x);
}
