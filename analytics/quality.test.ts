import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Trade } from '../core/protocol/index.ts';
import { QualityChecker, type QualityState, qualityConfigSchema } from './quality.ts';
import { normal, prng } from './synthetic.ts';

const NOW = Date.UTC(2024, 5, 1, 12);
let seq = 0;
const tr = (px: number, qty = 1, ts = NOW - 100): Trade => ({ id: String(++seq), ts, px, qty });

/** A checker that has seen `n` ordinary trades around `px`. */
function seasoned(n = 50, px = 100, config = {}) {
  const q = new QualityChecker(config);
  const rand = prng(1);
  for (let i = 0; i < n; i++)
    expect(q.check(tr(px * (1 + (rand() - 0.5) * 0.002), 1 + rand()), 'live', NOW).ok).toBe(true);
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
      expect(q.check(t, 'replay', NOW)).toMatchObject({ ok: false, check: 'invalid' });
    }
    expect(q.check(tr(1, 0), 'live', NOW)).toEqual({ ok: true }); // zero amount is valid
    expect(q.stats()).toMatchObject({ checked: 8, accepted: 1, quarantined: { invalid: 7 } });
  });

  it('quarantines trades from the future, or flags them when configured', () => {
    expect(new QualityChecker().check(tr(1, 1, NOW + 6000), 'live', NOW)).toMatchObject({
      ok: false,
      check: 'future',
    });
    expect(new QualityChecker().check(tr(1, 1, NOW + 4000), 'live', NOW)).toEqual({ ok: true });
    const flagging = new QualityChecker({ future: { action: 'flag' } });
    expect(flagging.check(tr(1, 1, NOW + 6000), 'live', NOW)).toEqual({ ok: true, flags: ['future'] });
    expect(new QualityChecker({ future: { action: 'off' } }).check(tr(1, 1, NOW + 9e9), 'live', NOW)).toEqual(
      { ok: true },
    );
  });

  it('judges freshness by source: live strictly, repair loosely, replay not at all', () => {
    const q = new QualityChecker();
    const old = NOW - 2 * 3_600_000;
    expect(q.check(tr(1, 1, old), 'live', NOW)).toEqual({ ok: true, flags: ['stale'] });
    expect(q.check(tr(1, 1, old), 'repair', NOW)).toEqual({ ok: true });
    expect(q.check(tr(1, 1, NOW - 8 * 86_400_000), 'repair', NOW)).toEqual({ ok: true, flags: ['stale'] });
    expect(q.check(tr(1, 1, Date.UTC(2019, 0, 1)), 'replay', NOW)).toEqual({ ok: true });
    const strict = new QualityChecker({ stale: { action: 'quarantine', liveMaxAgeMs: 1000 } });
    expect(strict.check(tr(1, 1, NOW - 1001), 'live', NOW)).toMatchObject({ ok: false, check: 'stale' });
    expect(strict.stats().flagged.stale).toBe(0);
    expect(q.stats().flagged.stale).toBe(2);
  });

  it('quarantines a single bad print and keeps the following good trades', () => {
    const q = seasoned();
    expect(q.check(tr(150), 'live', NOW)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(100.01), 'live', NOW)).toEqual({ ok: true });
    expect(q.check(tr(50), 'live', NOW)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(150), 'live', NOW)).toMatchObject({ ok: false, check: 'jump' }); // other side: no run
    expect(q.check(tr(100.02), 'live', NOW)).toEqual({ ok: true });
    expect(q.stats().quarantined.jump).toBe(3);
  });

  it('accepts a real move after confirmAfter consecutive same-side rejections', () => {
    const q = seasoned(50, 100, { zscore: { action: 'quarantine' } });
    expect(q.check(tr(120), 'live', NOW)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(121), 'live', NOW)).toMatchObject({ ok: false, check: 'jump' });
    expect(q.check(tr(120.5), 'live', NOW)).toEqual({ ok: true, flags: ['jump'] });
    // Statistics restarted at the new level: ordinary trades there pass both price checks.
    expect(q.priceStats()).toEqual({ count: 1, mean: 120.5, std: 0 });
    for (let i = 0; i < 30; i++)
      expect(q.check(tr(120.5 + (i % 3) * 0.01), 'live', NOW)).toEqual({ ok: true });
    const never = seasoned(50, 100, { confirmAfter: 0 });
    for (let i = 0; i < 10; i++) expect(never.check(tr(130), 'live', NOW).ok).toBe(false);
  });

  it('flags z-score anomalies by default only once there is enough history, and can quarantine them', () => {
    const young = seasoned(19);
    expect(young.check(tr(103), 'live', NOW)).toEqual({ ok: true });
    const q = seasoned(50);
    // std of the history ~0.06 → floored at 0.05 % of 100 = 0.05; 3 sigma ≈ 0.18.
    expect(q.check(tr(100.5), 'live', NOW)).toEqual({ ok: true, flags: ['zscore'] });
    expect(q.check(tr(100.05), 'live', NOW)).toEqual({ ok: true });
    const strict = seasoned(50, 100, { zscore: { action: 'quarantine' } });
    const before = strict.priceStats();
    expect(strict.check(tr(101), 'live', NOW)).toMatchObject({ ok: false, check: 'zscore' });
    expect(strict.priceStats()).toEqual(before); // rejected trades do not touch the statistics
  });

  it('flags an amount 100× the rolling mean and quarantines one 500× it', () => {
    // Seasoned amounts are 1–2, mean about 1.5.
    const q = seasoned(50);
    expect(q.check(tr(100, 300), 'live', NOW)).toEqual({ ok: true, flags: ['volume'] });
    expect(seasoned(50).check(tr(100, 1500), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
    expect(q.check(tr(100, 1), 'live', NOW)).toEqual({ ok: true });
    const strict = seasoned(50, 100, { volume: { action: 'quarantine', factor: 10 } });
    expect(strict.check(tr(100, 100), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
    const lax = seasoned(50, 100, { volume: { quarantineFactor: null } });
    expect(lax.check(tr(100, 1500), 'live', NOW)).toEqual({ ok: true, flags: ['volume'] });
  });

  it('takes a run of oversize trades as a new normal size instead of locking the symbol out', () => {
    const q = seasoned(50);
    expect(q.check(tr(100, 2000), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
    expect(q.check(tr(100, 2000), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
    // The third in a row (confirmAfter 3) is accepted, flagged, and the size statistics restart.
    expect(q.check(tr(100, 2000), 'live', NOW)).toEqual({ ok: true, flags: ['volume'] });
    expect(q.check(tr(100, 2000), 'live', NOW)).toEqual({ ok: true });
    // A normal-size trade in between resets the run.
    const r = seasoned(50);
    r.check(tr(100, 2000), 'live', NOW);
    r.check(tr(100, 1), 'live', NOW);
    expect(r.check(tr(100, 2000), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
    expect(r.check(tr(100, 2000), 'live', NOW)).toMatchObject({ ok: false, check: 'volume' });
  });

  it('keeps rolling mean and std equal to a direct computation over the last window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 2, noNaN: true }), { minLength: 1, maxLength: 700 }),
        fc.integer({ min: 2, max: 150 }),
        (moves, window) => {
          const q = new QualityChecker({ zscore: { window, action: 'off' }, jump: { action: 'off' } });
          const prices = moves.map((m) => 30_000 * m);
          for (const p of prices) q.check(tr(p), 'replay', NOW);
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
      q.check(bad ? tr(-1) : tr(100), 'live', NOW);
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
        ts: NOW - 1000 + i,
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
      expect(b.check(t, 'live', NOW)).toEqual(a.check(t, 'live', NOW));
    });
    expect(b.toState()).toEqual(a.toState());
    const s = a.stats();
    expect(s.quarantined.jump + s.quarantined.zscore).toBeGreaterThan(10);
    expect(s.flagged.volume).toBeGreaterThan(5);
  });
});
