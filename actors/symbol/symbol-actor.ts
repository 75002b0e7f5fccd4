/**
 * SymbolActor: the running side of one symbol. Consumes the symbol's trades from JetStream
 * through a durable consumer, feeds the pure step (symbol-step.ts: bars, quality, analytics),
 * carries out what it decides — closed bars to BARS (with Nats-Msg-Id), throttled forming bars
 * to md.live, quarantine, the quiet-market timer — and snapshots its state to KV.
 *
 * Restart contract: the snapshot holds the builder state and the TRADES sequence it covers;
 * it is written only after every bar published before it was acknowledged. A new session
 * recreates the durable consumer at the next sequence, so replay is exact, and re-published
 * bars carry the same message ids (deduplicated by JetStream; upserts are idempotent anyway).
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { RetryPolicy } from 'cockatiel';
import type { TimerHandle } from '../../core/clock.ts';
import type { Config } from '../../core/config.ts';
import type { Pool } from '../../core/db.ts';
import { ConsumerEndedError, PublishFailedError } from '../../core/errors.ts';
import { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import { isConsumerDelivery, type Topology } from '../../core/nats.ts';
import {
  type Bar,
  consumers,
  type ExchangeKind,
  encodeJson,
  msgIds,
  SOURCE_BAR_EXCHANGE_KINDS,
  STREAMS,
  type SymbolSnapshot,
  stateKeys,
  subjects,
  type Trade,
} from '../../core/protocol/index.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { Mailbox } from '../runtime/mailbox.ts';
import { Quarantine } from '../runtime/quarantine.ts';
import type { Publication } from './analytics-stage.ts';
import { FormingOnce } from './forming-once.ts';
import {
  nextCloseAt,
  readSnapshot,
  type SymbolEffects,
  type SymbolState,
  snapshotDue,
  snapshotOf,
  startSymbolState,
  stepSymbol,
} from './symbol-step.ts';

type Message =
  | { type: 'trades'; msg: JsMsg }
  | { type: 'tick' }
  | { type: 'forming' }
  | { type: 'snapshot' }
  | { type: 'rules' };

/** How often a close is retried while the consumer still has trades outstanding. */
const BACKLOG_RECHECK_MS = 250;

export interface SymbolActorDeps {
  topo: Topology;
  cfg: Config;
  /** Alert rules and the indicator warm-up; without it the actor runs without either. */
  pool?: Pool;
  /** Its exchange's kind (from the actor spec); unknown: read from `exchanges` when a pool is given. */
  exchangeKind?: ExchangeKind;
}

export class SymbolActor implements ActorBehavior {
  private state!: SymbolState;
  private ctx!: ActorContext;
  private readonly mailbox = new Mailbox<Message>(1024, 'symbol actor');
  private readonly inflight = new Set<Promise<unknown>>();
  private snapshotSeq = 0;
  private caughtUp = false;
  private lastFormingAt = Number.NEGATIVE_INFINITY;
  /** A forming bar changed since the last forming publication. */
  private formingDirty = false;
  private readonly formingOnce = new FormingOnce();
  /** When the newest applied trade reached the bus (JetStream stored time, wall ms); stamped on bars as `nt`. */
  private newestTradeAt: number | null = null;
  private formingTimer: TimerHandle | null = null;
  private closeTimer: TimerHandle | null = null;
  private snapshotTimer: TimerHandle | null = null;
  private rulesTimer: TimerHandle | null = null;
  private quarantine!: Quarantine;
  private consumer: Consumer | null = null;
  private readonly publishRetry = retryForever(50, 2000);

  constructor(
    private readonly ex: string,
    private readonly sym: string,
    private readonly deps: SymbolActorDeps,
  ) {}

  async run(ctx: ActorContext): Promise<void> {
    this.ctx = ctx;
    const { topo } = this.deps;
    this.quarantine = Quarantine.forSymbol(
      topo.nc,
      this.ex,
      this.sym,
      'symbol',
      new OnceLogger(ctx.log),
      ctx.clock,
    );
    const startup = retryFor(30_000);
    // Listen for rule changes before the rules are first loaded: a rule created while the actor
    // starts is then reloaded from the mailbox instead of waiting for the periodic refresh.
    const rulesSub = topo.nc.subscribe(subjects.rulesChanged(this.ex, this.sym), {
      callback: (_err, msg) => {
        if (!isConsumerDelivery(msg, 'symbol.rules')) this.mailbox.offer({ type: 'rules' });
      },
    });
    try {
      await this.runSubscribed(ctx, startup);
    } finally {
      rulesSub.unsubscribe();
    }
  }

  private async runSubscribed(ctx: ActorContext, startup: RetryPolicy): Promise<void> {
    const snapshot = await startup.execute(() => this.loadSnapshot(), ctx.signal);
    await this.start(snapshot);
    this.snapshotSeq = this.state.seq;
    const messages = await startup.execute(() => this.openConsumer(this.state.seq + 1), ctx.signal);
    const pump = this.pump(messages);
    this.scheduleSnapshot();
    this.scheduleClose(nextCloseAt(this.state));
    ctx.ready();
    const onAbort = () => {
      messages.stop();
      this.mailbox.close();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      let handled = 0;
      for await (const m of this.mailbox) {
        await this.handle(m);
        // A backlog keeps the mailbox full, and taking from it never leaves the microtask
        // queue: yield now and then so sockets are read (else nats-server drops us as slow).
        if (++handled % 32 === 0) await new Promise((r) => setImmediate(r));
      }
      if (this.crash) throw this.crash;
      // Graceful stop: everything delivered has been applied; persist the resume point.
      await this.snapshot();
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      this.clearTimers();
      messages.stop();
    }
    await pump;
  }

  /**
   * Restores the state from the snapshot, or starts fresh and warms the indicators up from
   * stored bars; then loads the alert rules. The database being down delays neither the bars
   * nor the actor: warm-up is skipped (logged) and rules are retried on the next refresh.
   */
  private async start(snapshot: SymbolSnapshot | null): Promise<void> {
    const { cfg, pool } = this.deps;
    const kind = this.deps.exchangeKind ?? (await this.lookUpExchangeKind());
    const started = startSymbolState(
      this.ex,
      this.sym,
      {
        graceMs: cfg.bars.graceMs,
        revisionWindow: cfg.bars.revisionWindow,
        quality: cfg.analytics.quality,
        sourceBars: kind !== null && SOURCE_BAR_EXCHANGE_KINDS.includes(kind),
      },
      snapshot,
    );
    this.state = started.state;
    if (started.analyticsProblem)
      this.ctx.log.warn(
        { err: started.analyticsProblem },
        'unreadable analytics snapshot; starting the analytics afresh',
      );
    if (!pool) return;
    if (!started.analyticsRestored) {
      const n = await this.state.stage.warmUp(pool, cfg.analytics.warmupBars).catch((err) => {
        this.ctx.log.warn({ err: (err as Error).message }, 'indicator warm-up from stored bars failed');
        return 0;
      });
      if (n > 0) this.ctx.log.info({ bars: n }, 'indicators warmed up from stored bars');
    }
    await this.reloadRules();
  }

  /** An assignment from before specs named the exchange's kind: ask the database (null: unknown). */
  private async lookUpExchangeKind(): Promise<ExchangeKind | null> {
    const { pool } = this.deps;
    const kind = pool
      ? await pool
          .query<{ kind: ExchangeKind }>('SELECT kind FROM exchanges WHERE id = $1', [this.ex])
          .then((r) => r.rows[0]?.kind ?? null)
          .catch(() => null)
      : null;
    if (kind === null) this.ctx.log.warn('exchange kind unknown: source bars will be quarantined');
    return kind;
  }

  private async reloadRules(): Promise<void> {
    const { stage } = this.state;
    if (this.deps.pool)
      await stage.loadRules(this.deps.pool).catch((err) => {
        this.ctx.log.warn(
          { err: (err as Error).message },
          'cannot load alert rules; keeping the current ones',
        );
      });
    // Health shows the rules in force now, not as of the next trade.
    this.ctx.setDetail({ alertRules: stage.rulesCount });
    if (this.rulesTimer) this.ctx.clock.clearTimeout(this.rulesTimer);
    this.rulesTimer = this.ctx.clock.setTimeout(
      () => this.mailbox.offer({ type: 'rules' }),
      this.deps.cfg.analytics.rulesRefreshMs,
    );
  }

  /**
   * The snapshot to resume from. One that fails validation is quarantined (counted, logged
   * once) and the actor rebuilds from the start of the stream, as without a snapshot.
   */
  private async loadSnapshot(): Promise<SymbolSnapshot | null> {
    const entry = await this.deps.topo.kv.symbolState.get(stateKeys.symbol(this.ex, this.sym));
    const data = entry?.operation === 'PUT' ? entry.value : null;
    const read = readSnapshot(data);
    if (read.ok) return read.value;
    this.quarantine.send(`snapshot: ${read.error}; rebuilding from the stream`, data);
    return null;
  }

  private async openConsumer(startSeq: number): Promise<ConsumerMessages> {
    const { jsm, js } = this.deps.topo;
    const name = consumers.symbolTrades(this.ex, this.sym);
    // The snapshot, not the consumer's ack floor, is the resume point: recreate the durable there.
    await jsm.consumers.delete(STREAMS.trades, name).catch(() => false);
    await jsm.consumers.add(STREAMS.trades, {
      durable_name: name,
      filter_subject: subjects.trade(this.ex, this.sym),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(120_000),
      max_ack_pending: 20_000,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, startSeq),
    });
    const consumer = await js.consumers.get(STREAMS.trades, name);
    this.consumer = consumer;
    return consumer.consume({ max_messages: 256 });
  }

  private async pump(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const msg of messages) await this.mailbox.put({ type: 'trades', msg });
    } catch (e) {
      if (!this.mailbox.isClosed) throw e;
    } finally {
      // The consumer ended on its own (deleted, connection closed): crash so the parent restarts us.
      if (!this.ctx.signal.aborted && !this.mailbox.isClosed) {
        this.mailbox.close();
        this.crash = new ConsumerEndedError('trade');
      }
    }
  }

  private crash: Error | null = null;

  private async handle(m: Message): Promise<void> {
    if (this.crash) throw this.crash;
    switch (m.type) {
      case 'trades':
        this.applyMessage(m.msg);
        break;
      case 'tick':
        await this.onTick();
        break;
      case 'forming':
        this.publishForming();
        break;
      case 'rules':
        await this.reloadRules();
        break;
      case 'snapshot':
        try {
          await this.snapshot();
        } catch (err) {
          if (this.crash) throw this.crash;
          // NATS unavailable: the resume point just stays older; try again next interval.
          this.ctx.log.warn({ err }, 'snapshot failed; will retry');
        }
        this.scheduleSnapshot();
        break;
    }
  }

  private applyMessage(msg: JsMsg): void {
    const { info } = msg;
    const out = stepSymbol(this.state, {
      type: 'feed',
      seq: msg.seq,
      delivery: info.deliverySequence,
      redelivered: info.deliveryCount > 1,
      subject: msg.subject,
      data: msg.data,
      storedAt: Math.floor(info.timestampNanos / 1e6),
      now: this.ctx.clock.now(),
    });
    this.caughtUp = info.pending === 0;
    metrics.consumerLag.set({ actor: this.ctx.id }, info.pending);
    if (out.applied.trades > 0) {
      const storedAt = Math.floor(info.timestampNanos / 1e6);
      if (this.newestTradeAt === null || storedAt > this.newestTradeAt) this.newestTradeAt = storedAt;
    }
    this.carryOut(out);
    if (out.applied.trades > 0)
      metrics.tradesIn.inc({ exchange: this.ex, symbol: this.sym }, out.applied.trades);
    const applied = out.applied.trades + out.applied.bars;
    if (applied > 0) this.ctx.markEvent(applied);
    if (out.detail) this.ctx.setDetail({ ...out.detail, pending: info.pending });
    msg.ack();
  }

  private async onTick(): Promise<void> {
    this.closeTimer = null;
    // The last delivery said nothing was pending, but trades may have been stored since and
    // still be on their way to us: ask the consumer before closing a bar on the wall clock.
    if (this.caughtUp && !(await this.nothingOutstanding())) this.caughtUp = false;
    if (!this.caughtUp) {
      // Replaying a backlog: the trades themselves advance the clock; check again shortly.
      this.closeTimer = this.ctx.clock.setTimeout(
        () => this.mailbox.offer({ type: 'tick' }),
        BACKLOG_RECHECK_MS,
      );
      return;
    }
    this.carryOut(stepSymbol(this.state, { type: 'tick', now: this.ctx.clock.now() }));
  }

  /**
   * True when the consumer has neither undelivered trades nor delivered-but-unapplied ones.
   * Acks go out on the same connection before this request, so an applied message no longer
   * counts as ack-pending. Unknown (NATS unreachable) counts as outstanding: no bar is closed
   * while the stream can't be seen.
   */
  private async nothingOutstanding(): Promise<boolean> {
    if (!this.consumer) return false;
    try {
      const info = await this.consumer.info(false);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    } catch {
      return false;
    }
  }

  /** Publishes and schedules what a step decided. */
  private carryOut(out: SymbolEffects): void {
    for (const q of out.quarantined) this.quarantine.send(q.reason, q.payload);
    if (out.gap) this.ctx.log.warn({ gap: out.gap }, 'unrepairable feed gap: bars marked incomplete');
    if (out.closed.length > 0) {
      metrics.analyticsSeconds.observe(out.analyticsMs / 1000 / out.closed.length);
      this.publishClosed(out.closed);
    }
    this.publishAll(out.publications);
    const { kv } = this.deps.topo;
    // Latest features for real-time serving: best effort (the table has every row).
    for (const [tf, row] of out.latestFeatures)
      kv.featuresLatest
        .put(stateKeys.features(this.ex, this.sym, tf), encodeJson(row))
        .catch((err) => this.ctx.log.debug({ err }, 'features-latest put failed'));
    if (out.formingChanged) this.requestForming();
    if (out.closeAt !== undefined) this.scheduleClose(out.closeAt);
  }

  private publishClosed(bars: Bar[]): void {
    const { js } = this.deps.topo;
    for (const bar of bars) {
      const subject = subjects.bar(bar.tf, bar.ex, bar.sym);
      const data = encodeJson(this.stamped(bar));
      const msgID = msgIds.bar(bar.tf, bar.ex, bar.sym, bar.t, bar.rev);
      // Retried with the same id through NATS outages; JetStream stores it once.
      const p = this.publishRetry.execute(() => js.publish(subject, data, { msgID }), this.ctx.signal);
      metrics.barsOut.inc({ timeframe: bar.tf });
      this.track(p);
      if (bar.q) this.countQuality(bar.q);
    }
  }

  /** JetStream publications with ids (alerts, analytics updates) or plain events (quality). */
  private publishAll(publications: Publication[]): void {
    const { js, nc } = this.deps.topo;
    for (const p of publications) {
      if (!p.msgID) {
        nc.publish(p.subject, p.data);
        continue;
      }
      const msgID = p.msgID;
      this.track(this.publishRetry.execute(() => js.publish(p.subject, p.data, { msgID }), this.ctx.signal));
    }
  }

  private countQuality(q: NonNullable<Bar['q']>): void {
    const labels = { exchange: this.ex, symbol: this.sym };
    for (const [check, c] of Object.entries(q.checks)) {
      if (c.quarantined)
        metrics.qualityChecks.inc({ ...labels, check, outcome: 'quarantined' }, c.quarantined);
      if (c.flagged) metrics.qualityChecks.inc({ ...labels, check, outcome: 'flagged' }, c.flagged);
    }
    metrics.qualityScore.set(labels, q.score);
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    p.then(
      () => this.inflight.delete(p),
      (e) => {
        this.inflight.delete(p);
        // Only reached when stopping: a lost publish must not be covered by a snapshot.
        this.crash ??= new PublishFailedError('bar', { cause: e });
        this.mailbox.offer({ type: 'tick' });
      },
    );
  }

  private stamped(bar: Bar): Bar {
    return this.newestTradeAt === null || bar.src ? bar : { ...bar, nt: this.newestTradeAt };
  }

  private requestForming(): void {
    this.formingDirty = true;
    const now = this.ctx.clock.now();
    const throttle = this.deps.cfg.bars.formingThrottleMs;
    if (now - this.lastFormingAt >= throttle) {
      this.publishForming();
      return;
    }
    if (this.formingTimer) return;
    this.formingTimer = this.ctx.clock.setTimeout(
      () => {
        this.formingTimer = null;
        this.mailbox.offer({ type: 'forming' });
      },
      throttle - (now - this.lastFormingAt),
    );
  }

  /** Publishes the forming bars if they changed since the last time (forming-once.ts: why). */
  private publishForming(): void {
    if (!this.formingDirty) return;
    this.formingDirty = false;
    this.lastFormingAt = this.ctx.clock.now();
    const { nc } = this.deps.topo;
    const out = stepSymbol(this.state, { type: 'forming' });
    const live: string[] = [];
    for (const bar of out.forming) {
      const subject = subjects.live(bar.tf, bar.ex, bar.sym);
      const data = encodeJson(this.stamped(bar));
      live.push(subject);
      if (this.formingOnce.changed(subject, data)) nc.publish(subject, data);
    }
    this.formingOnce.retain(live);
    this.publishAll(out.publications);
  }

  /** (Re)sets the quiet-market timer to fire at wall time `at` (none when null). */
  private scheduleClose(at: number | null): void {
    if (this.closeTimer) this.ctx.clock.clearTimeout(this.closeTimer);
    this.closeTimer = null;
    if (at === null) return;
    const delay = Math.max(0, at - this.ctx.clock.now());
    this.closeTimer = this.ctx.clock.setTimeout(() => this.mailbox.offer({ type: 'tick' }), delay);
  }

  private scheduleSnapshot(): void {
    this.snapshotTimer = this.ctx.clock.setTimeout(() => {
      // A full mailbox must not cancel snapshots for good: try again next interval.
      if (!this.mailbox.offer({ type: 'snapshot' })) this.scheduleSnapshot();
    }, this.deps.cfg.bars.snapshotIntervalMs);
  }

  /** Written only once every publication before it is acknowledged (the restart contract). */
  private async snapshot(): Promise<void> {
    if (!snapshotDue(this.state, this.snapshotSeq)) return;
    const seq = this.state.seq;
    await Promise.all(this.inflight);
    if (this.crash) throw this.crash;
    const body = encodeJson(snapshotOf(this.state));
    await this.deps.topo.kv.symbolState.put(stateKeys.symbol(this.ex, this.sym), body);
    this.snapshotSeq = seq;
  }

  private clearTimers(): void {
    for (const t of [this.formingTimer, this.closeTimer, this.snapshotTimer, this.rulesTimer])
      if (t) this.ctx.clock.clearTimeout(t);
  }
}

export type { Trade };
