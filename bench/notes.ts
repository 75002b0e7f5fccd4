/** The notes printed under the table: how each figure was measured and how to read it. */
import { exchangeNotes } from './exchange.ts';
import { fmtInt, fmtRate } from './report.ts';
import type { Results } from './rows.ts';
import { BENCH_SYMBOLS } from './workload.ts';

function diffs(p: NonNullable<Results['pipeline']>): string {
  return (
    `Stored 1m bars vs barsFromTrades, field by field: ${p.mismatches.length} mismatches` +
    (p.mismatches.length ? ` (first: ${p.mismatches[0]})` : '') +
    `; ${p.revisedBars} bars carry revisions; ${p.quarantined} trades quarantined; ${p.restarts} symbol-actor ` +
    'restarts (crashes) during the run.'
  );
}

export function notesFor(r: Results): string[] {
  const o = r.options;
  const m = r.machine;
  const notes: string[] = [
    `${m.cpus} × ${m.cpuModel}, ${m.memGb} GB, Node ${m.node}, ${m.natsServer}, local PostgreSQL. ` +
      'Roles (supervisor, worker, gateway), the load generator and the graphql-ws client run in this one Node ' +
      'process (one JS thread) next to nats-server and PostgreSQL on the same cores; the ceilings use the same ' +
      'layout (publisher and consumers in one process).',
    `Publishing (ceiling and pipeline alike): pre-encoded TradeBatch JSON of ${o.batchSize} trades with ` +
      `Nats-Msg-Id, ${o.window} publishes in flight, connection with noAsyncTraces. The ceiling consumes with one ` +
      'durable pull consumer per symbol (consume({max_messages: 512}), ack each), as the symbol actors do, ' +
      'but does nothing else with a message.',
  ];
  const p = r.pipeline;
  if (p) {
    notes.push(
      `Pipeline (live): ${fmtInt(p.trades)} trades (${o.tradesPerMs} per ms of exchange time, past timestamps, ` +
        `one closer trade per symbol) in ${fmtInt(p.msgs)} messages over ${BENCH_SYMBOLS.length} symbols, ` +
        'published while the symbol actors run in the same process; published in ' +
        `${p.publishSeconds.toFixed(1)} s, applied after ${p.appliedSeconds.toFixed(1)} s, last closed 1m bar ` +
        `in candles after ${p.storedSeconds.toFixed(1)} s. ${diffs(p)}`,
    );
  }
  const b = r.backlog;
  if (b)
    notes.push(
      `Backlog replay (run last): ${fmtInt(b.trades)} trades are stored in TRADES before the symbol actors ` +
        'start (what a restart after an outage looks like); timed from the first applied trade to the last closed ' +
        `1m bar in candles, against the consume-only ceiling. ${diffs(b)} While replaying, the actors' ` +
        'mailbox/consumer loops can keep the event loop in microtasks for seconds: timers and socket reads starve, ' +
        "KV/JetStream requests time out (actor crashes), and nats-server may cut the connection's deliveries as a " +
        'slow consumer (MaxPending 64 MB exceeded), which drops pulled trades — see the report.',
    );
  if (r.sim)
    notes.push(
      `Sim exchange row: the real SimExchangeActor + TradePublisher (encoding in the loop, cockatiel retry per ` +
        `publish) at ${fmtInt(r.sim.configuredPerSec)}/s configured; over ${r.sim.seconds.toFixed(0)} s it published ` +
        `${fmtRate(r.sim.publishedPerSec)} and the symbol actors applied ${fmtRate(r.sim.appliedPerSec)}.`,
    );
  if (r.latency) {
    const l = o.latency;
    notes.push(
      `Latency: live trades (ts = now) at ${fmtInt(l.ratePerSec)} trades/s over ${BENCH_SYMBOLS.length} symbols, one batch per symbol ` +
        `every 5 ms, each batch with a unique price; one graphql-ws subscription per symbol (1m). "Newest trade" = ` +
        'receive time − publish time of the batch whose price is the update\'s close; "first forming update with ' +
        'it" = publish → the first update containing that batch. Both include the gateway, the client and the load ' +
        'generator sharing the event loop.',
      'Which forming figure the 25 ms target refers to: the "newest trade" figure at the default throttle — what a ' +
        'chart actually shows is at most that old when it arrives. The throttle (bars.formingThrottleMs) only limits ' +
        'how often updates are sent, so a given trade may wait up to one throttle interval before an update carries ' +
        'it (the "first forming update with it" row, bounded by throttle + pipeline latency, by design). At ' +
        'throttle 0 every batch produces an update, so the two coincide and the row shows the raw per-trade latency.',
      `Closed bars: latency from the bar's end (open + 60 s) to receipt; a bar closes once the exchange clock ` +
        `passes end + grace (${l.graceMs} ms) — by the next trade or the quiet-market timer — so grace is the floor.`,
    );
  }
  if (r.rss) {
    const s = r.rss;
    notes.push(
      `RSS: whole system in this process at ${fmtInt(s.ratePerSec)} live trades/s with 5 subscribers for ` +
        `${s.minutes} min; ${s.samples.length} samples; warm-up ${s.warmupSec.toFixed(0)} s; slope = least squares ` +
        `over the samples after warm-up ("flat": slope < 1 MB/min; noise shown as ± one standard error). Published ${fmtInt(s.published)}, applied ` +
        `${fmtInt(s.applied)} trades, ${fmtInt(s.candleUpdates)} candle updates received. Leak check afterwards: ` +
        'heap used right after a forced full GC, then again after more of the same load — RSS also moves with ' +
        'V8 old-space sizing between major GCs, which the live heap does not.',
    );
  }
  if (r.quality)
    notes.push(
      'Quality overhead: the pipeline (live) with the quality checks at their defaults vs every check but ' +
        '`invalid` off, alternating runs over fresh exchanges with the same trades; medians compared. The ' +
        'workload is dated in the past and published as live, so `stale` flags every trade: the flag path is measured.',
    );
  if (r.exchange) notes.push(...exchangeNotes(r.exchange));
  for (const e of r.errors) notes.push(`ERROR in ${e.section}: ${e.message.split('\n')[0]}`);
  return notes;
}
