import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SourceBar, Trade } from '../core/protocol/index.ts';
import { QualityChecker, type QualityState, qualityConfigSchema } from './quality.ts';
import { normal, prng } from './synthetic.ts';

const NOW = Date.UTC(2024, 5, 1, 12);
let seq = 0;
/** Message (stream sequence) of the next check: each check its own message unless a test says so. */
let m = 0;
const tr = (px: number, qty = 1, ts = NOW - 100): Trade => ({ id: String(++seq), ts, px, qty });

/** A checker that has seen `n` ordinary trades around `px`. */
function seasoned(n = 50, px = 100, config = {}) {
  const q = new QualityChecker(config);
  const rand = prng(1);
  for (let i = 0; i < n; i++)
    expect(q.check(tr(px * (1 + (rand() - 0.5) * 0.002), 1 + rand()), 'live', NOW, ++m).ok).toBe(true);
  return q;
}

describe('qualityConfigSchema', () => {
  it('has named defaults and refuses unknown keys', () => {
    const c = qualityConfigSchema.parse({});
    expect(c.zscore).toMatchObject({ action: 'flag', sigma: 3, window: 100, minHistory: 20 });
    expect(c.jump).toEqual({ action: 'quarantine', pct: 10 });
    expect(c.volume).toMatchObject({ action: 'flag', factor: 100, quarantineFactor: 500 });
    expect(c.invalid.minTs).toBe(Date.UTC(2000, 0, 1));
    expect(qualityConfigSchema.parse({ jump: { pct: 5 } }).jump).toEqual({ action: 'quarantine', pct: 5 });
    expect(qualityConfigSchema.safeParse({ jump: { pc: 5 } }).success).toBe(false);
    expect(qualityConfigSchema.safeParse({ invalid: { action: 'flag' } }).success).toBe(false);
  });
});

describe('QualityChecker', () => {
  it('quarantines invalid values whatever the configuration', () => {
    const q = new QualityChecker();
    for (const t of [
      tr(0),
      tr(-1),
      tr(Number.NaN),
      tr(Number.POSITIVE_INFINITY),
      tr(1, -1),
      tr(1, Number.NaN),
      tr(1, 1, Date.UTC(1999, 11, 31)),
    ]) {
      expect(q.check(t, 'replay', NOW, ++m)).toMatchObject({ ok: false, check: 'invalid' });
    }
    expect(q.check(tr(1, 0), 'live', NOW, ++m)).toEqual({ ok: true }); // zero amount is valid
    expect(q.stats()).toMatchObject({ checked: 8, accepted: 1, quarantined: { invalid: 7 } });
  });

  it('quarantines trades from the future, or flags them when configured', () => {
    expect(new QualityChecker().check(tr(1, 1, NOW + 6000), 'live', NOW, ++m)).toMatchObject({
      ok: false,
      check: 'future',
    });
    expect(new QualityChecker().check(tr(1, 1, NOW + 4000), 'live', NOW, ++m)).toEqual({ ok: true });
    const flagging = new QualityChecker({ future: { action: 'flag' } });
    expect(flagging.check(tr(1, 1, NOW + 6000), 'live', NOW, ++m)).toEqual({ ok: true, flags: ['future'] });
    expect(
      new QualityChecker({ future: { action: 'off' } }).check(tr(1, 1, NOW + 9e9), 'live', NOW, ++m),
    ).toEqual({ ok: true });
  });

  it('judges freshness by source: live strictly, repair loosely, replay not at all', () => {
    const q = new QualityChecker();
    const old = NOW - 2 * 3_600_000;
    expect(q.check(tr(1, 1, old), 'live', NOW, ++m)).toEqual({ ok: true, flags: ['stale'] });
    expect(q.check(tr(1, 1, old), 'repair', NOW, ++m)).toEqual({ ok: true });
    expect(q.check(tr(1, 1, NOW - 8 * 86_400_000), 'repair', NOW, ++m)).toEqual({
      ok: true,
      flags: ['stale'],
    });
    expect(q.check(tr(1, 1, Date.UTC(2019, 0, 1)), 'replay', NOW, ++m)).toEqual({ ok: true });
    const strict = new QualityChecker({ stale: { action: 'quarantine', liveMaxAgeMs: 1000 } });
    expect(strict.check(tr(1, 1, NOW - 1001), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'stale' });
    expect(strict.stats().flagged.stale).toBe(0);
    expect(q.stats().flagged.stale).toBe(2);
  });

  it('quarantines a single bad print and keeps the following good trades', () => {
    const q = seasoned();
    expect(q.check(tr(150), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(100.01), 'live', NOW, ++m)).toEqual({ ok: true });
    expect(q.check(tr(50), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(150), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'jump' }); // other side: no run
    expect(q.check(tr(100.02), 'live', NOW, ++m)).toEqual({ ok: true });
    expect(q.stats().quarantined.jump).toBe(3);
  });

  it('accepts a real move once outliers came in several messages over time (confirmAfter, confirmMessages, confirmSpanMs)', () => {
    // Before: three trades in a row were enough, so one message carrying three could move the bar.
    // Now (defaults): 3 outliers from 3 distinct messages, the last 1 s or more after the first.
    const q = seasoned(50, 100, { zscore: { action: 'quarantine' } });
    expect(q.check(tr(120), 'live', NOW, 1001)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(121), 'live', NOW + 400, 1002)).toMatchObject({ ok: false, check: 'jump' });
    // Three outliers from three messages, but only 999 ms apart: not yet.
    expect(q.check(tr(120.7), 'live', NOW + 999, 1003)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(120.5), 'live', NOW + 1000, 1004)).toEqual({ ok: true, flags: ['jump'] });
    // Statistics restarted at the new level: ordinary trades there pass both price checks.
    expect(q.priceStats()).toEqual({ count: 1, mean: 120.5, std: 0 });
    for (let i = 0; i < 30; i++)
      expect(q.check(tr(120.5 + (i % 3) * 0.01), 'live', NOW + 1000, ++m)).toEqual({ ok: true });
    const never = seasoned(50, 100, { confirmAfter: 0 });
    for (let i = 0; i < 10; i++) expect(never.check(tr(130), 'live', NOW + i * 1000, ++m).ok).toBe(false);
  });

  it('never takes one message as a real move, however many outliers it carries or how long ago they claim to be', () => {
    // Regression: three forged trades at 1e9 in one message were accepted as "a real move".
    const q = seasoned();
    const forged = Array.from({ length: 50 }, (_, i) => tr(1e9, 1, NOW - 50_000 + i * 1000));
    for (const t of forged) expect(q.check(t, 'live', NOW, 7777)).toMatchObject({ ok: false, check: 'jump' });
    // The same message redelivered later (or its stream time read late) still counts once.
    expect(q.check(tr(1e9, 1, NOW + 59_900), 'live', NOW + 60_000, 7777)).toMatchObject({
      ok: false,
      check: 'jump',
    });
    expect(q.check(tr(100.01, 1, NOW + 59_900), 'live', NOW + 60_000, 7778)).toEqual({ ok: true });
    expect(q.stats().quarantined.jump).toBe(51);
    expect(q.priceStats().mean).toBeLessThan(101);
  });

  it('needs the messages and the time together, and restarts the run when a normal trade comes between', () => {
    // Many messages, no time: a burst of publishes is not a sustained move.
    const burst = seasoned();
    for (let i = 0; i < 20; i++) expect(burst.check(tr(150), 'live', NOW + 10 * i, ++m).ok).toBe(false);
    // Enough time, two messages: not enough messages.
    const two = seasoned();
    for (let i = 0; i < 5; i++) expect(two.check(tr(150), 'live', NOW, 501).ok).toBe(false);
    for (let i = 0; i < 5; i++) expect(two.check(tr(150), 'live', NOW + 5000, 502).ok).toBe(false);
    expect(two.check(tr(150), 'live', NOW + 5000, 503)).toEqual({ ok: true, flags: ['jump'] });
    // A normal trade in between starts the count again.
    const broken = seasoned();
    broken.check(tr(150), 'live', NOW, ++m);
    broken.check(tr(150), 'live', NOW + 600, ++m);
    expect(broken.check(tr(100.01), 'live', NOW + 700, ++m)).toEqual({ ok: true });
    expect(broken.check(tr(150), 'live', NOW + 1200, ++m).ok).toBe(false);
    expect(broken.check(tr(150), 'live', NOW + 1800, ++m).ok).toBe(false);
    expect(broken.check(tr(150), 'live', NOW + 2199, ++m).ok).toBe(false); // 999 ms since the new run began
    expect(broken.check(tr(150), 'live', NOW + 2200, ++m).ok).toBe(true);
  });

  it('measures replayed history on its own trade clock (published as fast as it can be read)', () => {
    const q = seasoned();
    const at = (s: number) => tr(150, 1, NOW - 3_600_000 + s * 1000);
    expect(q.check(at(0), 'replay', NOW, ++m).ok).toBe(false);
    expect(q.check(at(1), 'replay', NOW, ++m).ok).toBe(false);
    expect(q.check(at(2), 'replay', NOW, ++m)).toEqual({ ok: true, flags: ['jump'] });
    // Live trades: the stream clock, not the trade time they claim.
    const live = seasoned();
    expect(live.check(at(0), 'live', NOW, ++m).ok).toBe(false);
    expect(live.check(at(1), 'live', NOW, ++m).ok).toBe(false);
    expect(live.check(at(2), 'live', NOW, ++m).ok).toBe(false);
  });

  it('flags z-score anomalies by default only once there is enough history, and can quarantine them', () => {
    const young = seasoned(19);
    expect(young.check(tr(103), 'live', NOW, ++m)).toEqual({ ok: true });
    const q = seasoned(50);
    // std of the history ~0.06 → floored at 0.05 % of 100 = 0.05; 3 sigma ≈ 0.18.
    expect(q.check(tr(100.5), 'live', NOW, ++m)).toEqual({ ok: true, flags: ['zscore'] });
    expect(q.check(tr(100.05), 'live', NOW, ++m)).toEqual({ ok: true });
    const strict = seasoned(50, 100, { zscore: { action: 'quarantine' } });
    const before = strict.priceStats();
    expect(strict.check(tr(101), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'zscore' });
    expect(strict.priceStats()).toEqual(before); // rejected trades do not touch the statistics
  });

  it('flags an amount 100× the rolling mean and quarantines one 500× it', () => {
    // Seasoned amounts are 1–2, mean about 1.5.
    const q = seasoned(50);
    expect(q.check(tr(100, 300), 'live', NOW, ++m)).toEqual({ ok: true, flags: ['volume'] });
    expect(seasoned(50).check(tr(100, 1500), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'volume' });
    expect(q.check(tr(100, 1), 'live', NOW, ++m)).toEqual({ ok: true });
    const strict = seasoned(50, 100, { volume: { action: 'quarantine', factor: 10 } });
    expect(strict.check(tr(100, 100), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'volume' });
    const lax = seasoned(50, 100, { volume: { quarantineFactor: null } });
    expect(lax.check(tr(100, 1500), 'live', NOW, ++m)).toEqual({ ok: true, flags: ['volume'] });
  });

  it('takes a confirmed run of oversize trades as a new normal size instead of locking the symbol out', () => {
    const q = seasoned(50);
    expect(q.check(tr(100, 2000), 'live', NOW, ++m)).toMatchObject({ ok: false, check: 'volume' });
    expect(q.check(tr(100, 2000), 'live', NOW + 500, ++m)).toMatchObject({ ok: false, check: 'volume' });
    // The third in a row, third message, a second after the first: accepted, flagged, and the size statistics restart.
    expect(q.check(tr(100, 2000), 'live', NOW + 1000, ++m)).toEqual({ ok: true, flags: ['volume'] });
    expect(q.check(tr(100, 2000), 'live', NOW + 1000, ++m)).toEqual({ ok: true });
    // A normal-size trade in between resets the run.
    const r = seasoned(50);
    r.check(tr(100, 2000), 'live', NOW, ++m);
    r.check(tr(100, 1), 'live', NOW + 500, ++m);
    expect(r.check(tr(100, 2000), 'live', NOW + 1000, ++m)).toMatchObject({ ok: false, check: 'volume' });
    expect(r.check(tr(100, 2000), 'live', NOW + 1500, ++m)).toMatchObject({ ok: false, check: 'volume' });
    // One message of giant trades never becomes the new normal size.
    const one = seasoned(50);
    for (let i = 0; i < 20; i++)
      expect(one.check(tr(100, 1e9), 'live', NOW + i * 1000, 4242)).toMatchObject({
        ok: false,
        check: 'volume',
      });
  });

  it('judges source bars: consistent OHLC, finished and aligned minutes, near recent prices unless confirmed', () => {
    const MIN = 60_000;
    const T = NOW - 3_600_000;
    const bar = (i: number, c = 100, more: Partial<SourceBar> = {}): SourceBar => ({
      t: T + i * MIN,
      o: c,
      h: c + 0.2,
      l: c - 0.2,
      c,
      vol: 1000,
      ...more,
    });
    const q = new QualityChecker();
    for (let i = 0; i < 30; i++)
      expect(q.checkBar(bar(i, 100 + (i % 3) * 0.1), NOW, 1)).toEqual({ ok: true });
    for (const bad of [
      bar(30, 100, { h: 99, l: 101 }), // high below low
      bar(30, 100, { o: 100.5 }), // open above high
      bar(30, 100, { vol: -1 }),
      bar(30, 100, { c: Number.NaN }),
      bar(30, 100, { h: Number.POSITIVE_INFINITY }),
      bar(30, 100, { t: T + 30 * MIN + 5 }), // not minute-aligned
    ])
      expect(q.checkBar(bad, NOW, 2)).toMatchObject({ ok: false, check: 'invalid' });
    // A minute that has not ended yet.
    expect(q.checkBar({ ...bar(0), t: NOW - 30_000 - ((NOW - 30_000) % MIN) + MIN }, NOW, 3)).toMatchObject({
      ok: false,
      check: 'future',
    });
    // Far from recent prices: its high (or low) is judged, not only its close.
    expect(q.checkBar(bar(31, 100, { h: 1e9 }), NOW, 4)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.checkBar(bar(31, 100, { l: 50 }), NOW, 4)).toMatchObject({ ok: false, check: 'jump' });
    // Many absurd bars in one message: all quarantined.
    for (let i = 32; i < 40; i++) expect(q.checkBar(bar(i, 1e9), NOW, 5).ok).toBe(false);
    expect(q.checkBar(bar(40, 100.1), NOW, 6)).toEqual({ ok: true });
    // A new level kept over three polls, a minute apart: accepted on the third.
    expect(q.checkBar(bar(41, 130), NOW, 7).ok).toBe(false);
    expect(q.checkBar(bar(42, 130), NOW + MIN, 8).ok).toBe(false);
    expect(q.checkBar(bar(43, 130), NOW + 2 * MIN, 9)).toEqual({ ok: true, flags: ['jump'] });
    expect(q.checkBar(bar(44, 130.1), NOW + 2 * MIN, 10)).toEqual({ ok: true });
    expect(q.stats()).toMatchObject({ accepted: 33, quarantined: { invalid: 6, future: 1, jump: 12 } });
  });

  it('reads a state saved before runs counted messages and continues its run from there', () => {
    const q = seasoned();
    q.check(tr(150), 'live', NOW, ++m);
    const old = q.toState() as QualityState & { priceRun?: unknown; volumeRun?: unknown };
    const { priceRun: _p, volumeRun: _v, ...rest } = old;
    const legacy: QualityState = { ...rest, pendingSide: 1, pendingCount: 2, volumePending: 0 };
    const r = new QualityChecker({}, JSON.parse(JSON.stringify(legacy)) as QualityState);
    // The saved run counts as one message of unknown time: two more messages a second apart confirm it.
    expect(r.check(tr(150), 'live', NOW, ++m).ok).toBe(false);
    expect(r.check(tr(150), 'live', NOW + 1000, ++m)).toEqual({ ok: true, flags: ['jump'] });
  });

  it('keeps rolling mean and std equal to a direct computation over the last window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 2, noNaN: true }), { minLength: 1, maxLength: 700 }),
        fc.integer({ min: 2, max: 150 }),
        (moves, window) => {
          const q = new QualityChecker({ zscore: { window, action: 'off' }, jump: { action: 'off' } });
          const prices = moves.map((m) => 30_000 * m);
          for (const p of prices) q.check(tr(p), 'replay', NOW, ++m);
          const last = prices.slice(-window);
          const mean = last.reduce((a, b) => a + b, 0) / last.length;
          const std = Math.sqrt(last.reduce((a, b) => a + (b - mean) ** 2, 0) / last.length);
          const got = q.priceStats();
          expect(got.count).toBe(last.length);
          expect(Math.abs(got.mean! - mean)).toBeLessThan(1e-9 * mean);
          expect(Math.abs(got.std! - std)).toBeLessThan(1e-6 * std + 1e-7);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('scores the exponentially weighted share of clean trades', () => {
    const q = new QualityChecker({ scoreHalfLife: 10 });
    expect(q.qualityScore).toBe(1);
    const keep = 2 ** (-1 / 10);
    let want = 1;
    const rand = prng(2);
    for (let i = 0; i < 200; i++) {
      const bad = rand() < 0.2;
      q.check(bad ? tr(-1) : tr(100), 'live', NOW, ++m);
      want = want * keep + (bad ? 0 : 1 - keep);
    }
    expect(q.qualityScore).toBeCloseTo(want, 12);
    expect(q.qualityScore).toBeGreaterThan(0);
    expect(q.qualityScore).toBeLessThan(1);
  });

  it('continues exactly after a JSON round trip of its state', () => {
    const rand = prng(3);
    let px = 100;
    const trades = Array.from({ length: 4000 }, (_, i) => {
      px *= Math.exp(normal(rand) * 0.001);
      const spike = rand() < 0.01 ? 5 : 1;
      return {
        id: String(i),
        ts: NOW - 5_000_000 + i * 1000,
        px: rand() < 0.005 ? px * 1.5 : px,
        qty: rand() * spike * (rand() < 0.005 ? 500 : 1),
      };
    });
    const config = {
      zscore: { action: 'quarantine' as const, window: 64 },
      volume: { action: 'flag' as const },
    };
    const a = new QualityChecker(config);
    let b = new QualityChecker(config);
    trades.forEach((t, i) => {
      if (i % 777 === 0)
        b = new QualityChecker(config, JSON.parse(JSON.stringify(b.toState())) as QualityState);
      // One message per trade, stored just after it: runs confirm after two seconds.
      expect(b.check(t, 'live', t.ts + 50, i)).toEqual(a.check(t, 'live', t.ts + 50, i));
    });
    expect(b.toState()).toEqual(a.toState());
    const s = a.stats();
    expect(s.quarantined.jump + s.quarantined.zscore).toBeGreaterThan(10);
    expect(s.flagged.volume).toBeGreaterThan(5);
  });
});
