/**
 * SymbolActor: the running side of one symbol. Consumes the symbol's trades from JetStream
 * through a durable consumer, feeds the pure BarBuilder, publishes closed bars to BARS (with
 * Nats-Msg-Id) and throttled forming bars to md.live, and snapshots its state to KV.
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
import { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import type { Topology } from '../../core/nats.ts';
import {
  type Bar,
  consumers,
  decodeJson,
  encodeJson,
  type FeedMessage,
  msgIds,
  SCHEMA_VERSION,
  STREAMS,
  stateKeys,
  subjects,
  type Trade,
  validateFeedMessage,
} from '../../core/protocol/index.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { Mailbox } from '../runtime/mailbox.ts';
import { AnalyticsStage, type AnalyticsStageState, type Publication } from './analytics-stage.ts';
import { BarBuilder, type BuilderState, emptyState, type StepResult } from './bar-builder.ts';
import { Quarantine } from './quarantine.ts';

type Message =
  | { type: 'trades'; msg: JsMsg }
  | { type: 'tick' }
  | { type: 'forming' }
  | { type: 'snapshot' }
  | { type: 'rules' };

interface Snapshot {
  v: typeof SCHEMA_VERSION;
  /** Last TRADES stream sequence reflected in `state`. */
  seq: number;
  state: BuilderState;
  /** Analytics (quality, indicators, features, alert state) as of `seq`. */
  analytics?: AnalyticsStageState;
}

export interface SymbolActorDeps {
  topo: Topology;
  cfg: Config;
  /** Alert rules and the indicator warm-up; without it the actor runs without either. */
  pool?: Pool;
}

export class SymbolActor implements ActorBehavior {
  private builder!: BarBuilder;
  private ctx!: ActorContext;
  private readonly mailbox = new Mailbox<Message>(1024, 'symbol actor');
  private readonly inflight = new Set<Promise<unknown>>();
  private lastSeq = 0;
  private lastDelivery = 0;
  private snapshotSeq = 0;
  private caughtUp = false;
  /** Wall clock minus exchange clock when the newest trade was applied. */
  private offsetMs = 0;
  private lastFormingAt = Number.NEGATIVE_INFINITY;
  private formingTimer: TimerHandle | null = null;
  private closeTimer: TimerHandle | null = null;
  private snapshotTimer: TimerHandle | null = null;
  private rulesTimer: TimerHandle | null = null;
  private stage!: AnalyticsStage;
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
    this.quarantine = new Quarantine(topo.nc, this.ex, this.sym, 'symbol', new OnceLogger(ctx.log));
    const startup = retryFor(30_000);
    // Listen for rule changes before the rules are first loaded: a rule created while the actor
    // starts is then reloaded from the mailbox instead of waiting for the periodic refresh.
    const rulesSub = topo.nc.subscribe(subjects.rulesChanged(this.ex, this.sym), {
      callback: () => {
        this.mailbox.offer({ type: 'rules' });
      },
    });
    try {
      await this.runSubscribed(ctx, startup);
    } finally {
      rulesSub.unsubscribe();
    }
  }

  private async runSubscribed(ctx: ActorContext, startup: RetryPolicy): Promise<void> {
    const { cfg } = this.deps;
    const snapshot = await startup.execute(() => this.loadSnapshot(), ctx.signal);
    this.builder = new BarBuilder(snapshot?.state ?? emptyState(this.ex, this.sym), {
      graceMs: cfg.bars.graceMs,
      revisionWindow: cfg.bars.revisionWindow,
    });
    this.lastSeq = this.snapshotSeq = snapshot?.seq ?? 0;
    await this.startAnalytics(snapshot);
    const messages = await startup.execute(() => this.openConsumer(this.lastSeq + 1), ctx.signal);
    const pump = this.pump(messages);
    this.scheduleSnapshot();
    this.scheduleClose();
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
   * Restores the analytics from the snapshot, or starts them fresh and warms the indicators up
   * from stored bars; then loads the alert rules. The database being down delays neither the
   * bars nor the actor: warm-up is skipped (logged) and rules are retried on the next refresh.
   */
  private async startAnalytics(snapshot: Snapshot | null): Promise<void> {
    const { cfg, pool } = this.deps;
    const saved = snapshot?.analytics;
    const restored = AnalyticsStage.restorable(saved);
    try {
      this.stage = new AnalyticsStage(this.ex, this.sym, cfg.analytics.quality, restored ? saved : undefined);
    } catch (err) {
      this.ctx.log.warn({ err }, 'unreadable analytics snapshot; starting the analytics afresh');
      this.stage = new AnalyticsStage(this.ex, this.sym, cfg.analytics.quality);
    }
    if (!pool) return;
    if (!restored) {
      const n = await this.stage.warmUp(pool, cfg.analytics.warmupBars).catch((err) => {
        this.ctx.log.warn({ err: (err as Error).message }, 'indicator warm-up from stored bars failed');
        return 0;
      });
      if (n > 0) this.ctx.log.info({ bars: n }, 'indicators warmed up from stored bars');
    }
    await this.reloadRules();
  }

  private async reloadRules(): Promise<void> {
    if (this.deps.pool)
      await this.stage.loadRules(this.deps.pool).catch((err) => {
        this.ctx.log.warn(
          { err: (err as Error).message },
          'cannot load alert rules; keeping the current ones',
        );
      });
    // Health shows the rules in force now, not as of the next trade.
    this.ctx.setDetail({ alertRules: this.stage.rulesCount });
    if (this.rulesTimer) this.ctx.clock.clearTimeout(this.rulesTimer);
    this.rulesTimer = this.ctx.clock.setTimeout(
      () => this.mailbox.offer({ type: 'rules' }),
      this.deps.cfg.analytics.rulesRefreshMs,
    );
  }

  private async loadSnapshot(): Promise<Snapshot | null> {
    const entry = await this.deps.topo.kv.symbolState.get(stateKeys.symbol(this.ex, this.sym));
    if (entry?.operation !== 'PUT' || entry.value.length === 0) return null;
    const parsed = decodeJson(entry.value);
    const snap = parsed.ok ? (parsed.value as Snapshot) : null;
    if (!snap || snap.v !== SCHEMA_VERSION || typeof snap.seq !== 'number' || !snap.state?.forming) {
      this.ctx.log.warn('ignoring unreadable symbol snapshot; rebuilding from the stream');
      return null;
    }
    return snap;
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
        this.crash = new Error('trade consumer ended unexpectedly');
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
    // First deliveries come with consecutive consumer sequences. A jump means messages were
    // lost on the way (e.g. dropped for a slow client): applying this one could close a bar
    // without them, so crash and replay from the last snapshot instead.
    const delivery = msg.info.deliverySequence;
    if (msg.info.deliveryCount === 1 && this.lastDelivery > 0 && delivery !== this.lastDelivery + 1) {
      throw new Error(`trade delivery gap: consumer sequence ${this.lastDelivery} → ${delivery}`);
    }
    if (msg.info.deliveryCount === 1) this.lastDelivery = delivery;
    this.lastSeq = msg.seq;
    this.caughtUp = msg.info.pending === 0;
    metrics.consumerLag.set({ actor: this.ctx.id }, msg.info.pending);
    const parsed = decodeJson(msg.data);
    const checked = parsed.ok ? validateFeedMessage(parsed.value) : parsed;
    if (!checked.ok) {
      this.quarantine.send(checked.error, msg.data);
      msg.ack();
      return;
    }
    const feed = checked.value;
    const { ex, sym } = feed.kind === 'gap' ? feed.mark : feed.batch;
    if (ex !== this.ex || sym !== this.sym) {
      this.quarantine.send(`message for ${ex}/${sym} on ${msg.subject}`, parsed.ok ? parsed.value : null);
      msg.ack();
      return;
    }
    if (feed.kind !== 'trades') {
      this.applyOther(feed);
      msg.ack();
      return;
    }
    const { batch, rejected } = feed;
    for (const r of rejected) this.quarantine.send(r.reason, r.trade);
    // Data quality before a trade touches a bar; freshness is judged against the time the
    // message was stored, so a replay after a restart decides exactly as the first time.
    const storedAt = Math.floor(msg.info.timestampNanos / 1e6);
    const verdict = this.stage.judge(batch.trades, batch.source ?? 'live', storedAt, (id) =>
      this.builder.hasSeen(id),
    );
    for (const q of verdict.quarantined) this.quarantine.send(`quality ${q.check}: ${q.reason}`, q.trade);
    const before = this.builder.state.exClock;
    const result = this.builder.applyTrades(verdict.good);
    const after = this.builder.state.exClock;
    if (after !== null && after !== before) this.offsetMs = this.ctx.clock.now() - after;
    for (const t of result.tooLate) this.quarantine.send('late: bar no longer revisable', t);
    this.publishClosed(result.closed);
    const applied = verdict.good.length - result.duplicates - result.tooLate.length;
    if (applied > 0) {
      metrics.tradesIn.inc({ exchange: this.ex, symbol: this.sym }, applied);
      this.ctx.markEvent(applied);
    }
    this.ctx.setDetail({
      lastTradeTs: after,
      watermark: this.builder.state.watermark,
      pending: msg.info.pending,
      qualityScore: this.stage.qualityScore,
      alertRules: this.stage.rulesCount,
    });
    msg.ack();
    if (result.formingChanged) this.requestForming();
    this.scheduleClose();
  }

  /** Source bars (Yahoo) and gap marks: same ordering and publication rules as trades. */
  private applyOther(feed: Exclude<FeedMessage, { kind: 'trades' }>): void {
    const before = this.builder.state.exClock;
    let result: StepResult;
    if (feed.kind === 'bars') {
      for (const r of feed.rejected) this.quarantine.send(r.reason, r.bar);
      const applied = this.builder.applySourceBars(feed.batch.bars);
      for (const b of applied.tooLateBars) this.quarantine.send('late: source bar for a closed minute', b);
      const n = feed.batch.bars.length - applied.duplicates - applied.tooLateBars.length;
      if (n > 0) this.ctx.markEvent(n);
      result = applied;
    } else {
      result = this.builder.markGap(feed.mark.gap.from, feed.mark.gap.to);
      this.ctx.log.warn({ gap: feed.mark.gap }, 'unrepairable feed gap: bars marked incomplete');
    }
    const after = this.builder.state.exClock;
    if (after !== null && after !== before) this.offsetMs = this.ctx.clock.now() - after;
    this.publishClosed(result.closed);
    if (result.formingChanged) this.requestForming();
    this.scheduleClose();
  }

  private async onTick(): Promise<void> {
    this.closeTimer = null;
    // The last delivery said nothing was pending, but trades may have been stored since and
    // still be on their way to us: ask the consumer before closing a bar on the wall clock.
    if (this.caughtUp && !(await this.nothingOutstanding())) this.caughtUp = false;
    if (!this.caughtUp) {
      // Replaying a backlog: the trades themselves advance the clock; check again shortly.
      this.closeTimer = this.ctx.clock.setTimeout(() => this.mailbox.offer({ type: 'tick' }), 250);
      return;
    }
    const exchangeNow = this.ctx.clock.now() - this.offsetMs;
    const result = this.builder.advanceClock(exchangeNow);
    this.publishClosed(result.closed);
    if (result.formingChanged) this.requestForming();
    this.scheduleClose();
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

  private publishClosed(bars: Bar[]): void {
    if (bars.length === 0) return;
    const { js, kv } = this.deps.topo;
    const started = performance.now();
    // Indicators and features travel with the closed bar (attached in place).
    const { publications, latest } = this.stage.onClosed(bars);
    metrics.analyticsSeconds.observe((performance.now() - started) / 1000 / bars.length);
    for (const bar of bars) {
      const subject = subjects.bar(bar.tf, bar.ex, bar.sym);
      const data = encodeJson(bar);
      const msgID = msgIds.bar(bar.tf, bar.ex, bar.sym, bar.t, bar.rev);
      // Retried with the same id through NATS outages; JetStream stores it once.
      const p = this.publishRetry.execute(() => js.publish(subject, data, { msgID }), this.ctx.signal);
      metrics.barsOut.inc({ timeframe: bar.tf });
      this.track(p);
      if (bar.q) this.countQuality(bar.q);
    }
    this.publishAll(publications);
    // Latest features for real-time serving: best effort (the table has every row).
    for (const [tf, row] of latest)
      kv.featuresLatest
        .put(stateKeys.features(this.ex, this.sym, tf), encodeJson(row))
        .catch((err) => this.ctx.log.debug({ err }, 'features-latest put failed'));
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
        this.crash ??= new Error(`bar publish failed: ${(e as Error).message}`, { cause: e });
        this.mailbox.offer({ type: 'tick' });
      },
    );
  }

  private requestForming(): void {
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

  private publishForming(): void {
    this.lastFormingAt = this.ctx.clock.now();
    const { nc } = this.deps.topo;
    const bars = this.builder.formingBars();
    const firings = this.stage.onForming(bars);
    for (const bar of bars) nc.publish(subjects.live(bar.tf, bar.ex, bar.sym), encodeJson(bar));
    this.publishAll(firings);
  }

  private scheduleClose(): void {
    if (this.closeTimer) this.ctx.clock.clearTimeout(this.closeTimer);
    this.closeTimer = null;
    const at = this.builder.nextCloseAt();
    if (at === null) return;
    const delay = Math.max(0, at + this.offsetMs - this.ctx.clock.now());
    this.closeTimer = this.ctx.clock.setTimeout(() => this.mailbox.offer({ type: 'tick' }), delay);
  }

  private scheduleSnapshot(): void {
    this.snapshotTimer = this.ctx.clock.setTimeout(() => {
      // A full mailbox must not cancel snapshots for good: try again next interval.
      if (!this.mailbox.offer({ type: 'snapshot' })) this.scheduleSnapshot();
    }, this.deps.cfg.bars.snapshotIntervalMs);
  }

  private async snapshot(): Promise<void> {
    if (this.lastSeq === this.snapshotSeq) return;
    const seq = this.lastSeq;
    const state = JSON.stringify(this.builder.state);
    await Promise.all(this.inflight);
    if (this.crash) throw this.crash;
    const analytics = JSON.stringify(this.stage.toState());
    const body = `{"v":${SCHEMA_VERSION},"seq":${seq},"state":${state},"analytics":${analytics}}`;
    await this.deps.topo.kv.symbolState.put(stateKeys.symbol(this.ex, this.sym), body);
    this.snapshotSeq = seq;
  }

  private clearTimers(): void {
    for (const t of [this.formingTimer, this.closeTimer, this.snapshotTimer, this.rulesTimer])
      if (t) this.ctx.clock.clearTimeout(t);
  }
}

export type { Trade };
