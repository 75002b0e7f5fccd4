import { describe, expect, it } from 'vitest';
import { TradeDeliveryGapError } from '../../core/errors.ts';
import { type Bar, encodeJson, subjects, type Trade } from '../../core/protocol/index.ts';
import {
  readSnapshot,
  type SymbolEffects,
  type SymbolInput,
  type SymbolState,
  snapshotDue,
  snapshotOf,
  startSymbolState,
  stepSymbol,
} from './symbol-step.ts';

const EX = 'sim';
const SYM = 'BTC/USDT';
const T0 = Date.UTC(2024, 0, 2, 0, 0, 0);
const MIN = 60_000;
const GRACE = 1000;
/** Wall clock ahead of the exchange clock in these tests. */
const LAG = 400;
const OPTS = { graceMs: GRACE, revisionWindow: 3, quality: {}, sourceBars: false };
/** The options of a symbol whose exchange publishes source bars (yahoo). */
const BAR_OPTS = { ...OPTS, sourceBars: true };

const tr = (id: number, ts: number, px: number, qty = 1): Trade => ({ id: String(id), ts, px, qty });

/** Feeds messages as a consumer would deliver them: consecutive sequences, wall time after the newest trade. */
class Feed {
  private seq = 0;
  private delivery = 0;
  constructor(readonly state: SymbolState) {}

  send(msg: unknown, now: number, opts: { subject?: string; redelivered?: boolean } = {}): SymbolEffects {
    const input: SymbolInput = {
      type: 'feed',
      seq: ++this.seq,
      delivery: opts.redelivered ? this.delivery : ++this.delivery,
      redelivered: opts.redelivered ?? false,
      subject: opts.subject ?? subjects.trade(EX, SYM),
      data: msg instanceof Uint8Array ? msg : encodeJson(msg),
      storedAt: now,
      now,
    };
    return stepSymbol(this.state, input);
  }

  trades(trades: Trade[], sym = SYM, now = Math.max(...trades.map((t) => t.ts)) + LAG): SymbolEffects {
    return this.send({ v: 1, ex: EX, sym, trades }, now);
  }
}

const fresh = (opts = OPTS) => new Feed(startSymbolState(EX, SYM, opts, null).state);
const find = (bars: Bar[], tf: string, t: number) => bars.find((b) => b.tf === tf && b.t === t);

describe('symbol step: trades', () => {
  it('applies a batch, schedules the close on the wall clock and closes the bar when trade time passes it', () => {
    const f = fresh();
    const first = f.trades([tr(1, T0 + 1000, 100), tr(2, T0 + 20_000, 101, 2)]);
    expect(first.applied.trades).toBe(2);
    expect(first.closed).toEqual([]);
    expect(first.quarantined).toEqual([]);
    expect(first.formingChanged).toBe(true);
    // Exchange end of the 1m bucket plus the grace, moved onto the wall clock by the observed lag.
    expect(first.closeAt).toBe(T0 + MIN + GRACE + LAG);
    expect(first.detail).toMatchObject({ lastTradeTs: T0 + 20_000 });

    const forming = stepSymbol(f.state, { type: 'forming' }).forming;
    expect(forming.map((b) => b.tf)).toEqual(['1m', '5m', '15m', '1h', '4h', '1d']);
    expect(find(forming, '1m', T0)).toMatchObject({ o: 100, c: 101, vol: 3, n: 2, closed: false });

    const next = f.trades([tr(3, T0 + MIN + 1500, 102)]);
    const bar = find(next.closed, '1m', T0);
    expect(bar).toMatchObject({ o: 100, h: 101, l: 100, c: 101, n: 2, closed: true, rev: 0 });
    // Analytics ride with the closed bar.
    expect(bar?.ind).toBeTypeOf('object');
    expect(next.latestFeatures.has('1m')).toBe(true);
  });

  it('drops a batch it has already applied (a regrouped redelivery) without quarantining it', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100), tr(2, T0 + 2000, 101)]);
    const before = JSON.stringify(f.state.builder.state);
    const again = f.trades([tr(1, T0 + 1000, 100), tr(2, T0 + 2000, 101)]);
    expect(again.applied.trades).toBe(0);
    expect(again.closed).toEqual([]);
    expect(again.quarantined).toEqual([]);
    expect(again.formingChanged).toBe(false);
    expect(JSON.stringify(f.state.builder.state)).toBe(before);
  });

  it('quarantines a batch for another symbol and leaves the bars and the close timer alone', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    const before = JSON.stringify(f.state.builder.state);
    const out = f.trades([tr(2, T0 + 2000, 50)], 'ETH/USDT');
    expect(out.quarantined).toHaveLength(1);
    expect(out.quarantined[0]!.reason).toBe('message for sim/ETH/USDT on md.trade.sim.BTC-USDT');
    expect(out.closeAt).toBeUndefined();
    expect(out.applied.trades).toBe(0);
    expect(JSON.stringify(f.state.builder.state)).toBe(before);
    // The message is consumed all the same: a snapshot after it resumes past it.
    expect(f.state.seq).toBe(2);
  });

  it('quarantines a message that is not JSON with its raw bytes', () => {
    const f = fresh();
    const raw = new TextEncoder().encode('{nope');
    const out = f.send(raw, T0);
    expect(out.quarantined).toHaveLength(1);
    expect(out.quarantined[0]!.reason).toMatch(/^not JSON/);
    expect(out.quarantined[0]!.payload).toBe(raw);
  });

  it('quarantines invalid trades and trades the quality checks reject, keeping the rest', () => {
    const f = fresh();
    const out = f.trades([
      tr(1, T0 + 1000, 100),
      { ...tr(2, T0 + 1100, 100), px: -1 },
      tr(3, T0 + 1200, 200),
    ]);
    expect(out.quarantined.map((q) => q.reason.split(':')[0])).toEqual([
      'px must be a finite number > 0',
      'quality jump',
    ]);
    expect(out.applied.trades).toBe(1);
  });

  it('keeps one message of absurd trades out of the bar, and takes the same level kept over messages and time', () => {
    const f = fresh();
    const base = Array.from({ length: 30 }, (_, i) => tr(i + 1, T0 + 1000 + i * 100, 100 + (i % 3) * 0.01));
    f.trades(base);
    // Three forged trades at 1e9 in one message: quarantined, the bar untouched.
    const forged = f.trades([tr(100, T0 + 5000, 1e9), tr(101, T0 + 5001, 1e9), tr(102, T0 + 5002, 1e9)]);
    expect(forged.applied.trades).toBe(0);
    expect(forged.quarantined.map((q) => q.reason.split(':')[0])).toEqual(Array(3).fill('quality jump'));
    const high = () => find(stepSymbol(f.state, { type: 'forming' }).forming, '1m', T0)!.h;
    expect(high()).toBeLessThan(101);
    // The feed goes on at the old level (which ends that run of outliers).
    expect(f.trades([tr(150, T0 + 5500, 100.01)]).applied.trades).toBe(1);
    // The level kept in messages stored 600 ms apart: the third message (1.2 s after the first) confirms it.
    const stored = T0 + 6000;
    const moves = [0, 1, 2].map((k) => f.trades([tr(200 + k, T0 + 6000 + k, 1e9)], SYM, stored + 600 * k));
    expect(moves.map((o) => o.applied.trades)).toEqual([0, 0, 1]);
    expect(high()).toBe(1e9);
  });

  it('revises a closed bar with a late trade inside the revision window', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    f.trades([tr(2, T0 + MIN + 1500, 101)]);
    const late = f.trades([tr(3, T0 + 30_000, 99)]);
    expect(late.quarantined).toEqual([]);
    expect(find(late.closed, '1m', T0)).toMatchObject({ rev: 1, l: 99, n: 2, closed: true });
    // The 5m bucket is still forming: it changed, it did not close.
    expect(find(late.closed, '5m', T0)).toBeUndefined();
    expect(late.formingChanged).toBe(true);
  });

  it('quarantines a trade too late to revise its bar', () => {
    const f = fresh();
    for (let m = 0; m < 6; m++) f.trades([tr(m + 1, T0 + m * MIN + 1500, 100)]);
    const late = f.trades([tr(99, T0 + 1000, 100)]);
    expect(late.quarantined).toEqual([
      { reason: 'late: bar no longer revisable', payload: tr(99, T0 + 1000, 100) },
    ]);
    expect(late.closed).toEqual([]);
    expect(late.applied.trades).toBe(0);
  });

  it('crashes on a gap in first deliveries and accepts redeliveries', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    expect(() =>
      f.send({ v: 1, ex: EX, sym: SYM, trades: [tr(1, T0 + 1000, 100)] }, T0, { redelivered: true }),
    ).not.toThrow();
    const skipped: SymbolInput = {
      type: 'feed',
      seq: 9,
      delivery: 5,
      redelivered: false,
      subject: subjects.trade(EX, SYM),
      data: encodeJson({ v: 1, ex: EX, sym: SYM, trades: [tr(2, T0 + 2000, 100)] }),
      storedAt: T0 + 2000,
      now: T0 + 2000,
    };
    const seq = f.state.seq;
    expect(() => stepSymbol(f.state, skipped)).toThrow(TradeDeliveryGapError);
    expect(() => stepSymbol(f.state, skipped)).toThrow(
      expect.objectContaining({ code: 'TM_ERR_DELIVERY_GAP' }),
    );
    // Nothing of the skipped message was applied.
    expect(f.state.seq).toBe(seq);
  });
});

describe('symbol step: source bars and gap marks', () => {
  const sourceBar = (t: number, c = 10) => ({ t, o: 10, h: 10.5, l: 9.5, c, vol: 5 });
  const bars = (list: unknown[]) => ({ v: 1, ex: EX, sym: SYM, bars: list });

  it('closes a source bar at once, drops a repeated one and quarantines late and malformed ones', () => {
    const f = fresh(BAR_OPTS);
    const out = f.send(bars([sourceBar(T0 + MIN), { ...sourceBar(T0), t: T0 + 5 }]), T0 + 2 * MIN);
    expect(out.applied.bars).toBe(1);
    expect(find(out.closed, '1m', T0 + MIN)).toMatchObject({ src: true, closed: true, o: 10, c: 10, vol: 5 });
    expect(out.quarantined.map((q) => q.reason)).toEqual(['t must be minute-aligned']);

    const again = f.send(bars([sourceBar(T0 + MIN)]), T0 + 2 * MIN);
    expect(again.applied.bars).toBe(0);
    expect(again.closed).toEqual([]);
    expect(again.quarantined).toEqual([]);

    const late = f.send(bars([sourceBar(T0)]), T0 + 2 * MIN);
    expect(late.quarantined.map((q) => q.reason)).toEqual(['late: source bar for a closed minute']);
  });

  it('quarantines source bars from an exchange whose kind publishes trades, as one message', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    const before = JSON.stringify(f.state.builder.state);
    const out = f.send(bars([sourceBar(T0 + MIN), sourceBar(T0 + 2 * MIN)]), T0 + 3 * MIN);
    expect(out.quarantined.map((q) => q.reason)).toEqual(['source bars: sim is not a source-bar exchange']);
    expect(out.applied.bars).toBe(0);
    expect(out.closed).toEqual([]);
    expect(JSON.stringify(f.state.builder.state)).toBe(before);
    expect(f.state.seq).toBe(2);
  });

  it('puts source bars through the quality checks: an absurd one is quarantined, its neighbours kept', () => {
    const f = fresh(BAR_OPTS);
    f.send(bars(Array.from({ length: 5 }, (_, i) => sourceBar(T0 + i * MIN))), T0 + 6 * MIN);
    const out = f.send(
      bars([sourceBar(T0 + 5 * MIN), { ...sourceBar(T0 + 6 * MIN), h: 1e9 }, sourceBar(T0 + 7 * MIN)]),
      T0 + 9 * MIN,
    );
    expect(out.quarantined.map((q) => q.reason.split(':')[0])).toEqual(['quality jump']);
    expect(out.quarantined[0]!.payload).toMatchObject({ t: T0 + 6 * MIN, h: 1e9 });
    expect(out.applied.bars).toBe(2);
    expect(out.closed.filter((b) => b.tf === '1m').map((b) => [b.t - T0, b.h])).toEqual([
      [5 * MIN, 10.5],
      [7 * MIN, 10.5],
    ]);
  });

  it('marks the bars a gap overlaps incomplete, revising closed ones, and reports the gap', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    f.trades([tr(2, T0 + MIN + 1500, 101)]);
    const gap = { from: T0 + 10_000, to: T0 + 20_000, reason: 'history does not reach back' };
    const out = f.send({ v: 1, ex: EX, sym: SYM, gap }, T0 + 2 * MIN);
    expect(out.gap).toEqual(gap);
    expect(find(out.closed, '1m', T0)).toMatchObject({ inc: true, rev: 1 });
    expect(out.formingChanged).toBe(true);
    expect(out.quarantined).toEqual([]);
  });
});

describe('symbol step: the quiet-market timer', () => {
  it('closes the bar when the wall clock reaches the close time, not before, then moves on', () => {
    const f = fresh();
    const applied = f.trades([tr(1, T0 + 1000, 100)]);
    const at = applied.closeAt!;
    expect(at).toBe(T0 + MIN + GRACE + LAG);

    const early = stepSymbol(f.state, { type: 'tick', now: at - 1 });
    expect(early.closed).toEqual([]);
    expect(early.closeAt).toBe(at);

    const due = stepSymbol(f.state, { type: 'tick', now: at });
    expect(due.closed.map((b) => `${b.tf}@${b.t - T0}`)).toEqual(['1m@0']);
    // Next: the 5m bucket that holds it.
    expect(due.closeAt).toBe(T0 + 5 * MIN + GRACE + LAG);
  });

  it('has no close time before any trade', () => {
    expect(stepSymbol(fresh().state, { type: 'tick', now: T0 }).closeAt).toBeNull();
  });
});

describe('symbol step: snapshots', () => {
  const batches = Array.from({ length: 8 }, (_, i) => [
    tr(2 * i + 1, T0 + i * 45_000 + 1000, 100 + (i % 3)),
    tr(2 * i + 2, T0 + i * 45_000 + 30_000, 100 + (i % 4), 2),
  ]);

  it('resumes from its snapshot exactly as if it had never stopped (bars and analytics)', () => {
    const whole = fresh();
    const expected = batches.map((b) => whole.trades(b));

    const first = fresh();
    for (const b of batches.slice(0, 4)) first.trades(b);
    const bytes = encodeJson(snapshotOf(first.state));
    const read = readSnapshot(bytes);
    expect(read.ok).toBe(true);
    if (!read.ok || !read.value) return;
    expect(read.value.seq).toBe(4);
    expect(snapshotDue(first.state, 4)).toBe(false);
    expect(snapshotDue(first.state, 3)).toBe(true);
    const restarted = startSymbolState(EX, SYM, OPTS, read.value);
    expect(restarted.analyticsRestored).toBe(true);
    expect(restarted.analyticsProblem).toBeNull();
    expect(restarted.state.seq).toBe(4);

    const second = new Feed(restarted.state);
    const resumed = batches.slice(4).map((b) => second.trades(b));
    expect(resumed.map((o) => o.closed)).toEqual(expected.slice(4).map((o) => o.closed));
    expect(resumed.flatMap((o) => o.closed).length).toBeGreaterThan(0);
  });

  it('round-trips the empty state (its -Infinity watermark is null in JSON)', () => {
    const read = readSnapshot(encodeJson(snapshotOf(fresh().state)));
    expect(read.ok && read.value?.state.watermark).toBe(Number.NEGATIVE_INFINITY);
  });

  it('reads no snapshot from an empty entry and refuses invalid ones with a reason', () => {
    expect(readSnapshot(null)).toEqual({ ok: true, value: null });
    expect(readSnapshot(new Uint8Array())).toEqual({ ok: true, value: null });
    const valid = JSON.parse(new TextDecoder().decode(encodeJson(snapshotOf(fresh().state))));
    const bad = (x: unknown) => readSnapshot(encodeJson(x));
    expect(readSnapshot(new TextEncoder().encode('{"v":1,')).ok).toBe(false);
    expect(bad({ ...valid, v: 2 }).ok).toBe(false);
    expect(bad({ ...valid, seq: -1 }).ok).toBe(false);
    expect(bad({ ...valid, state: { ...valid.state, forming: undefined } }).ok).toBe(false);
    expect(bad({ ...valid, state: { ...valid.state, forming: [{ t: 'x' }] } }).ok).toBe(false);
    expect(bad({ ...valid, state: { ...valid.state, surprise: 1 } }).ok).toBe(false);
  });

  it('restores the bars and starts the analytics afresh when the saved analytics are unreadable', () => {
    const f = fresh();
    f.trades([tr(1, T0 + 1000, 100)]);
    const snap = { ...snapshotOf(f.state), analytics: { analytics: { v: 99 } } };
    const started = startSymbolState(EX, SYM, OPTS, snap);
    expect(started.analyticsRestored).toBe(false);
    expect(started.analyticsProblem).toBe('not an analytics state');
    expect(started.state.builder.state.forming).toHaveLength(1);
  });
});
