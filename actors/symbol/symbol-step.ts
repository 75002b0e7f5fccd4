/**
 * The symbol actor's decisions as one step: (state, input) → effects. No I/O and no clock:
 * wall time enters as a field of the input, and what must be published, quarantined or
 * scheduled comes back as data for the running actor (symbol-actor.ts) to carry out.
 *
 * The state is updated in place (copying the bar builder and the analytics for every trade
 * batch would cost the hot path); a delivery gap, the one deliberate error, is thrown before
 * anything changes.
 *
 * Inputs:
 * - `feed`: one message of the symbol's trade subject (trades, source bars or a gap mark), with
 *   its stream position and the wall time it is applied at;
 * - `tick`: the quiet-market timer fired and the consumer has nothing outstanding, so the
 *   exchange clock is estimated from the wall clock to close due bars;
 * - `forming`: publish the forming bars now (the actor throttles how often).
 */

import { BarBuilder, emptyState, type StepResult } from '../../analytics/index.ts';
import { TradeDeliveryGapError } from '../../core/errors.ts';
import {
  type Bar,
  decodeJson,
  type GapMark,
  type Result,
  SCHEMA_VERSION,
  type SymbolSnapshot,
  type Timeframe,
  validateFeedMessage,
  validateSymbolSnapshot,
} from '../../core/protocol/index.ts';
import { AnalyticsStage, type Publication } from './analytics-stage.ts';

export interface SymbolStepOptions {
  graceMs: number;
  /** How many closed 1m bars stay revisable. */
  revisionWindow: number;
  /** `analytics.quality` of the config. */
  quality: Record<string, unknown>;
  /**
   * The symbol's exchange publishes source bars (its kind, e.g. yahoo): only then are source
   * bars applied; from any other exchange they are quarantined.
   */
  sourceBars: boolean;
}

export interface SymbolState {
  readonly ex: string;
  readonly sym: string;
  readonly builder: BarBuilder;
  readonly stage: AnalyticsStage;
  /** Source bars are accepted (SymbolStepOptions.sourceBars). */
  readonly sourceBars: boolean;
  /** Last TRADES stream sequence applied (the resume point a snapshot records). */
  seq: number;
  /** Consumer sequence of the last first delivery this session (0: none yet). */
  lastDelivery: number;
  /** Wall clock minus exchange clock when the exchange clock last moved. */
  offsetMs: number;
}

export type SymbolInput =
  | {
      type: 'feed';
      /** TRADES stream sequence of the message. */
      seq: number;
      /** Consumer delivery sequence, and whether this is a redelivery. */
      delivery: number;
      redelivered: boolean;
      subject: string;
      data: Uint8Array;
      /** When JetStream stored the message: quality judges freshness by it, so replay decides alike. */
      storedAt: number;
      /** Wall time now. */
      now: number;
    }
  | { type: 'tick'; now: number }
  | { type: 'forming' };

/** Rejected input for the quarantine subject, with the reason (`<kind>: <detail>`). */
export interface QuarantineItem {
  reason: string;
  payload: unknown;
}

export interface SymbolEffects {
  /** Closed bars and revisions with their indicators and features, in publication order. */
  closed: Bar[];
  /** Forming bars to publish now (for the `forming` input). */
  forming: Bar[];
  /** Analytics updates of revised series, alert firings and quality events. */
  publications: Publication[];
  /** The newest feature row per timeframe (for KV `features-latest`). */
  latestFeatures: Map<Timeframe, Record<string, unknown>>;
  quarantined: QuarantineItem[];
  /** Trades and source bars applied for the first time. */
  applied: { trades: number; bars: number };
  /** A forming bar changed: publish the forming bars (throttled). */
  formingChanged: boolean;
  /**
   * Wall time at which the quiet-market timer should fire; null when no bar is open; absent
   * when the input touched no bar (the timer stays as it is).
   */
  closeAt?: number | null;
  /** An unrepairable feed gap that was marked on the bars (for the log). */
  gap: GapMark['gap'] | null;
  /** Health detail after a trade batch. */
  detail: Record<string, unknown> | null;
  /** Time spent in indicators, features and alerts on closed bars, ms (for the metric). */
  analyticsMs: number;
}

export interface StartedState {
  state: SymbolState;
  /** The snapshot's analytics were restored (else the caller warms the indicators up). */
  analyticsRestored: boolean;
  /** Why the snapshot's analytics could not be used, when it had some. */
  analyticsProblem: string | null;
}

/** A fresh state (no snapshot) or the state a snapshot recorded. */
export function startSymbolState(
  ex: string,
  sym: string,
  opts: SymbolStepOptions,
  snapshot: SymbolSnapshot | null,
): StartedState {
  const builder = new BarBuilder(snapshot?.state ?? emptyState(ex, sym), {
    graceMs: opts.graceMs,
    revisionWindow: opts.revisionWindow,
  });
  const saved = snapshot?.analytics;
  let stage: AnalyticsStage | null = null;
  let analyticsProblem: string | null = null;
  if (AnalyticsStage.restorable(saved)) {
    try {
      stage = new AnalyticsStage(ex, sym, opts.quality, saved);
    } catch (err) {
      analyticsProblem = (err as Error).message;
    }
  } else if (saved !== undefined) analyticsProblem = 'not an analytics state';
  const state: SymbolState = {
    ex,
    sym,
    builder,
    stage: stage ?? new AnalyticsStage(ex, sym, opts.quality),
    sourceBars: opts.sourceBars,
    seq: snapshot?.seq ?? 0,
    lastDelivery: 0,
    offsetMs: 0,
  };
  return { state, analyticsRestored: stage !== null, analyticsProblem };
}

/** The KV value of an entry: a valid snapshot, nothing (empty), or why it cannot be used. */
export function readSnapshot(data: Uint8Array | null): Result<SymbolSnapshot | null> {
  if (!data || data.length === 0) return { ok: true, value: null };
  const parsed = decodeJson(data);
  return parsed.ok ? validateSymbolSnapshot(parsed.value) : parsed;
}

/** A snapshot is due when messages were applied since the one last written (at `writtenSeq`). */
export function snapshotDue(state: SymbolState, writtenSeq: number): boolean {
  return state.seq !== writtenSeq;
}

/** What a snapshot of this state records. */
export function snapshotOf(state: SymbolState): SymbolSnapshot {
  return {
    v: SCHEMA_VERSION,
    seq: state.seq,
    state: state.builder.state,
    analytics: state.stage.toState() as unknown as Record<string, unknown>,
  };
}

function noEffects(): SymbolEffects {
  return {
    closed: [],
    forming: [],
    publications: [],
    latestFeatures: new Map(),
    quarantined: [],
    applied: { trades: 0, bars: 0 },
    formingChanged: false,
    gap: null,
    detail: null,
    analyticsMs: 0,
  };
}

export function stepSymbol(state: SymbolState, input: SymbolInput): SymbolEffects {
  const out = noEffects();
  switch (input.type) {
    case 'feed':
      if (!applyFeed(state, input, out)) return out;
      break;
    case 'tick':
      // The exchange clock is estimated as wall time minus the offset seen with the last trade.
      settle(state, state.builder.advanceClock(input.now - state.offsetMs), out);
      break;
    case 'forming':
      out.forming = state.builder.formingBars();
      out.publications = state.stage.onForming(out.forming);
      return out;
  }
  out.closeAt = nextCloseAt(state);
  return out;
}

/** Wall time at which the next open bar is due to close (grace included), or null. */
export function nextCloseAt(state: SymbolState): number | null {
  const at = state.builder.nextCloseAt();
  return at === null ? null : at + state.offsetMs;
}

/** Applies one feed message; false when it was rejected whole (no bar touched). */
function applyFeed(
  state: SymbolState,
  input: Extract<SymbolInput, { type: 'feed' }>,
  out: SymbolEffects,
): boolean {
  // First deliveries come with consecutive consumer sequences. A jump means messages were lost
  // on the way (e.g. dropped for a slow client): applying this one could close a bar without
  // them, so the actor crashes and replays from its last snapshot instead.
  if (!input.redelivered) {
    if (state.lastDelivery > 0 && input.delivery !== state.lastDelivery + 1)
      throw new TradeDeliveryGapError(state.lastDelivery, input.delivery);
    state.lastDelivery = input.delivery;
  }
  state.seq = input.seq;
  const parsed = decodeJson(input.data);
  const checked = parsed.ok ? validateFeedMessage(parsed.value) : parsed;
  if (!checked.ok) {
    out.quarantined.push({ reason: checked.error, payload: input.data });
    return false;
  }
  const feed = checked.value;
  const { ex, sym } = feed.kind === 'gap' ? feed.mark : feed.batch;
  if (ex !== state.ex || sym !== state.sym) {
    out.quarantined.push({
      reason: `message for ${ex}/${sym} on ${input.subject}`,
      payload: parsed.ok ? parsed.value : null,
    });
    return false;
  }
  const before = state.builder.state.exClock;
  if (feed.kind === 'trades') {
    const { batch, rejected } = feed;
    for (const r of rejected) out.quarantined.push({ reason: r.reason, payload: r.trade });
    // Data quality before a trade touches a bar.
    // The message boundary matters: a real move is confirmed only over several messages.
    const verdict = state.stage.judge(batch.trades, batch.source ?? 'live', input.storedAt, input.seq, (id) =>
      state.builder.hasSeen(id),
    );
    for (const q of verdict.quarantined)
      out.quarantined.push({ reason: `quality ${q.check}: ${q.reason}`, payload: q.trade });
    const result = state.builder.applyTrades(verdict.good);
    for (const t of result.tooLate)
      out.quarantined.push({ reason: 'late: bar no longer revisable', payload: t });
    out.applied.trades = verdict.good.length - result.duplicates - result.tooLate.length;
    settle(state, result, out);
    out.detail = {
      lastTradeTs: state.builder.state.exClock,
      watermark: state.builder.state.watermark,
      qualityScore: state.stage.qualityScore,
      alertRules: state.stage.rulesCount,
    };
  } else if (feed.kind === 'bars') {
    if (!state.sourceBars) {
      // Only feeds without trades (their exchange's kind says so) publish bars: from anyone
      // else a bar could overwrite what trades built. One entry for the whole message.
      out.quarantined.push({
        reason: `source bars: ${state.ex} is not a source-bar exchange`,
        payload: parsed.ok ? parsed.value : null,
      });
      return false;
    }
    for (const r of feed.rejected) out.quarantined.push({ reason: r.reason, payload: r.bar });
    const verdict = state.stage.judgeBars(feed.batch.bars, input.storedAt, input.seq, (t) =>
      state.builder.hasSeenSourceBar(t),
    );
    for (const q of verdict.quarantined)
      out.quarantined.push({ reason: `quality ${q.check}: ${q.reason}`, payload: q.bar });
    const result = state.builder.applySourceBars(verdict.good);
    for (const b of result.tooLateBars)
      out.quarantined.push({ reason: 'late: source bar for a closed minute', payload: b });
    out.applied.bars = verdict.good.length - result.duplicates - result.tooLateBars.length;
    settle(state, result, out);
  } else {
    out.gap = feed.mark.gap;
    settle(state, state.builder.markGap(feed.mark.gap.from, feed.mark.gap.to), out);
  }
  const after = state.builder.state.exClock;
  if (after !== null && after !== before) state.offsetMs = input.now - after;
  return true;
}

/** Runs the analytics on what a builder step closed and collects it for publication. */
function settle(state: SymbolState, result: StepResult, out: SymbolEffects): void {
  out.formingChanged ||= result.formingChanged;
  if (result.closed.length === 0) return;
  // A duration for the metric only; no decision depends on it.
  const started = performance.now();
  const { publications, latest } = state.stage.onClosed(result.closed);
  out.analyticsMs += performance.now() - started;
  out.closed.push(...result.closed);
  out.publications.push(...publications);
  for (const [tf, row] of latest) out.latestFeatures.set(tf, row);
}
