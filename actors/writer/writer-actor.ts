/**
 * BarWriter (`writer.bars`): consumes closed bars from BARS through a durable consumer and
 * upserts them in batches (size- or time-bounded). Messages are acknowledged only after their
 * batch committed; a database outage stalls the writer (retried with backoff) instead of
 * losing bars, and redelivery is harmless because the upsert is idempotent. A new session
 * resumes right after the ack floor (see openConsumer).
 *
 * Only bars of known (exchange, symbol) pairs whose content matches their subject are stored
 * (bar-admission.ts); the rest are quarantined and acknowledged with their batch, so they
 * neither redeliver forever nor hold back the good bars around them.
 */
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { RetryPolicy } from 'cockatiel';
import type { TimerHandle } from '../../core/clock.ts';
import type { Config } from '../../core/config.ts';
import type { Pool } from '../../core/db.ts';
import { ConsumerEndedError } from '../../core/errors.ts';
import { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import { infoOrNull, type Topology } from '../../core/nats.ts';
import {
  type AnalyticsUpdate,
  type Bar,
  consumers,
  decodeJson,
  isAnalyticsUpdateSubject,
  type Result,
  STREAMS,
  subjects,
  validateAnalyticsUpdate,
  validateBar,
} from '../../core/protocol/index.ts';
import { retryFor, retryForever } from '../../core/retry.ts';
import type { ActorBehavior, ActorContext } from '../runtime/actor.ts';
import { Mailbox } from '../runtime/mailbox.ts';
import { Quarantine } from '../runtime/quarantine.ts';
import { KnownSymbols, type SeriesRef, seriesProblem, seriesSummary } from './bar-admission.ts';
import { type AnalyticsRow, upsertAnalytics, upsertBars } from './candle-store.ts';

/** A BARS message: a closed bar (maybe with analytics) or an analytics update of one. */
function decodeBarsMessage(
  subject: string,
  data: Uint8Array,
): Result<{ bar: Bar | null; update?: AnalyticsUpdate }> {
  const parsed = decodeJson(data);
  if (!parsed.ok) return parsed;
  if (isAnalyticsUpdateSubject(subject)) {
    const u = validateAnalyticsUpdate(parsed.value);
    return u.ok ? { ok: true, value: { bar: null, update: u.value } } : u;
  }
  const b = validateBar(parsed.value);
  return b.ok ? { ok: true, value: { bar: b.value } } : b;
}

type Message = { type: 'bar'; msg: JsMsg } | { type: 'flush' } | { type: 'symbols' };

interface Entry {
  msg: JsMsg;
  bar: Bar | null;
  update?: AnalyticsRow;
  /** KnownSymbols generation when it arrived (a later read knows every pair added before it). */
  seen: number;
}

export class BarWriterActor implements ActorBehavior {
  private readonly mailbox: Mailbox<Message>;
  private batch: Entry[] = [];
  private flushTimer: TimerHandle | null = null;
  private symbolsTimer: TimerHandle | null = null;
  private readonly known = new KnownSymbols();
  private quarantine!: Quarantine;

  constructor(private readonly deps: { topo: Topology; cfg: Config; pool: Pool }) {
    this.mailbox = new Mailbox<Message>(deps.cfg.writer.batchSize * 2, 'bar writer');
  }

  async run(ctx: ActorContext): Promise<void> {
    const { topo, cfg } = this.deps;
    this.quarantine = Quarantine.forWriter(topo.nc, new OnceLogger(ctx.log), ctx.clock);
    const dbRetry = retryForever(200, 3000);
    dbRetry.onRetry((r) => {
      ctx.setDetail({ dbError: 'error' in r ? r.error.message : 'retrying', retryInMs: r.delay });
      // Keep unacknowledged messages from being redelivered while we wait for the database.
      for (const { msg } of this.batch) msg.working();
    });
    await retryFor(30_000).execute(() => this.openConsumer(), ctx.signal);
    const consumer = await topo.js.consumers.get(STREAMS.bars, consumers.barWriter);
    const messages = await consumer.consume({ max_messages: cfg.writer.batchSize });
    const pump = (async () => {
      try {
        for await (const msg of messages) await this.mailbox.put({ type: 'bar', msg });
      } catch {
        // Stopping closes the mailbox under a waiting put.
      }
      this.mailbox.close();
    })();
    ctx.ready();
    this.scheduleSymbols(ctx);
    const onAbort = () => messages.stop();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const m of this.mailbox) {
        if (m.type === 'bar') {
          this.batch.push(this.admit(m.msg));
          if (this.batch.length >= cfg.writer.batchSize) await this.flush(ctx, dbRetry);
          else if (!this.flushTimer) {
            this.flushTimer = ctx.clock.setTimeout(() => {
              this.flushTimer = null;
              this.mailbox.offer({ type: 'flush' });
            }, cfg.writer.flushMs);
          }
        } else if (m.type === 'symbols') {
          await this.known
            .refresh(this.deps.pool)
            .catch((err) => ctx.log.debug({ err }, 'symbols re-read failed; keeping the last read'));
          this.scheduleSymbols(ctx);
        } else await this.flush(ctx, dbRetry);
      }
      await this.flush(ctx, dbRetry);
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      if (this.flushTimer) ctx.clock.clearTimeout(this.flushTimer);
      if (this.symbolsTimer) ctx.clock.clearTimeout(this.symbolsTimer);
      messages.stop();
      await pump;
    }
    if (!ctx.signal.aborted) throw new ConsumerEndedError('bar');
  }

  /** Decodes and checks one message: a bar or update to store, or nothing (quarantined). */
  private admit(msg: JsMsg): Entry {
    const seen = this.known.generation;
    const checked = decodeBarsMessage(msg.subject, msg.data);
    if (!checked.ok) {
      this.quarantine.send(checked.error, msg.subject);
      return { msg, bar: null, seen };
    }
    const { bar, update } = checked.value;
    const ref: SeriesRef = (bar ?? update)!;
    const problem = seriesProblem(msg.subject, ref, bar === null);
    if (problem) {
      this.quarantine.send(problem, seriesSummary(msg.subject, ref));
      return { msg, bar: null, seen };
    }
    return { msg, bar, update, seen };
  }

  /**
   * Drops (quarantines) the entries of pairs not in `symbols`. A pair missing from a read made
   * before its bar arrived is read again first, so a symbol added a moment ago is not refused.
   */
  private async keepKnown(batch: Entry[], dbRetry: RetryPolicy): Promise<void> {
    const refOf = (e: Entry): SeriesRef | null => e.bar ?? (e.update as SeriesRef | undefined) ?? null;
    const unknown = batch.filter((e) => {
      const ref = refOf(e);
      return ref !== null && !this.known.has(ref.ex, ref.sym);
    });
    if (unknown.length === 0) return;
    if (unknown.some((e) => e.seen >= this.known.generation))
      await dbRetry.execute(() => this.known.refresh(this.deps.pool));
    for (const e of unknown) {
      const ref = refOf(e)!;
      if (this.known.has(ref.ex, ref.sym)) continue;
      const summary = seriesSummary(e.msg.subject, ref);
      this.quarantine.send(`unknown symbol: ${summary.ex}/${summary.sym} is not in symbols`, summary);
      e.bar = null;
      e.update = undefined;
    }
  }

  private scheduleSymbols(ctx: ActorContext): void {
    this.symbolsTimer = ctx.clock.setTimeout(() => {
      this.symbolsTimer = null;
      // A full mailbox must not end the re-reads: try again next interval.
      if (!this.mailbox.offer({ type: 'symbols' })) this.scheduleSymbols(ctx);
    }, this.deps.cfg.writer.symbolsRefreshMs);
  }

  /**
   * Recreates the durable consumer just after its ack floor. Messages a dead session held
   * unacknowledged are then delivered at once instead of after ack_wait; those already
   * acknowledged past the floor are upserted again, which changes nothing.
   */
  private async openConsumer(): Promise<void> {
    const { topo, cfg } = this.deps;
    const existing = await infoOrNull(topo.jsm.consumers.info(STREAMS.bars, consumers.barWriter));
    const floor = existing?.ack_floor.stream_seq ?? 0;
    if (existing) await topo.jsm.consumers.delete(STREAMS.bars, consumers.barWriter).catch(() => false);
    await topo.jsm.consumers.add(STREAMS.bars, {
      durable_name: consumers.barWriter,
      filter_subject: subjects.barAll,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_ack_pending: cfg.writer.batchSize * 4,
      ...(floor > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
  }

  private async flush(ctx: ActorContext, dbRetry: RetryPolicy): Promise<void> {
    if (this.flushTimer) ctx.clock.clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    await this.keepKnown(batch, dbRetry);
    const bars = batch.flatMap((b) => (b.bar ? [b.bar] : []));
    // Arrival order: a later update of the same bar's analytics wins.
    const analytics = batch.flatMap((b): AnalyticsRow[] =>
      b.bar && (b.bar.ind || b.bar.feat || b.bar.q) ? [b.bar] : b.update ? [b.update] : [],
    );
    const started = performance.now();
    // Retried until it commits: acknowledging before that could lose bars. Not bound to the
    // abort signal, so a graceful stop still flushes what it holds.
    const written = await dbRetry.execute(async () => {
      const n = await upsertBars(this.deps.pool, bars);
      return n + (analytics.length ? await upsertAnalytics(this.deps.pool, analytics) : 0);
    });
    metrics.dbBatchSeconds.observe((performance.now() - started) / 1000);
    metrics.dbRowsWritten.inc(written);
    for (const { msg } of batch) msg.ack();
    ctx.markEvent(batch.length);
    ctx.setDetail({ lastBatch: batch.length, dbError: null });
  }
}
