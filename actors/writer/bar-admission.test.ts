import { describe, expect, it } from 'vitest';
import { subjects } from '../../core/protocol/index.ts';
import { type SeriesRef, seriesProblem, seriesSummary } from './bar-admission.ts';

const T = Date.UTC(2024, 4, 6, 12, 0, 0);
const ref = (more: Partial<SeriesRef> = {}): SeriesRef => ({
  ex: 'sim',
  sym: 'BTC/USDT',
  tf: '1m',
  t: T,
  ...more,
});

describe('bar admission', () => {
  it('accepts a bar or an analytics update whose content names the series of its subject', () => {
    expect(seriesProblem(subjects.bar('1m', 'sim', 'BTC/USDT'), ref(), false)).toBeNull();
    expect(
      seriesProblem(subjects.analyticsUpdate('5m', 'sim', 'BTC/USDT'), ref({ tf: '5m' }), true),
    ).toBeNull();
    expect(
      seriesProblem(
        subjects.bar('1d', 'nyse', 'BRK-B'),
        ref({ ex: 'nyse', sym: 'BRK-B', tf: '1d', t: Date.UTC(2024, 4, 6) }),
        false,
      ),
    ).toBeNull();
  });

  it('refuses content that names another symbol, exchange or timeframe than its subject', () => {
    const subject = subjects.bar('1m', 'sim', 'BTC/USDT');
    expect(seriesProblem(subject, ref({ sym: 'ETH/USDT' }), false)).toBe(
      'subject mismatch: content names sim/ETH/USDT 1m, subject is md.bar.1m.sim.BTC-USDT',
    );
    expect(seriesProblem(subject, ref({ ex: 'other' }), false)).toMatch(/^subject mismatch: /);
    expect(seriesProblem(subject, ref({ tf: '5m', t: T }), false)).toMatch(/^subject mismatch: /);
    // A closed bar on an update subject and the reverse.
    expect(seriesProblem(subjects.analyticsUpdate('1m', 'sim', 'BTC/USDT'), ref(), false)).toMatch(
      /^subject mismatch: /,
    );
    expect(seriesProblem(subject, ref(), true)).toMatch(/^subject mismatch: /);
    // Names that make no subject at all (a symbol too long to be a token) and huge names are clipped.
    const long = 'X'.repeat(5000);
    const problem = seriesProblem(subject, ref({ sym: long }), false)!;
    expect(problem).toMatch(/^subject mismatch: /);
    expect(problem.length).toBeLessThan(250);
  });

  it('refuses a bar whose time is not a bucket start of its timeframe', () => {
    expect(seriesProblem(subjects.bar('1m', 'sim', 'BTC/USDT'), ref({ t: T + 1 }), false)).toBe(
      `misaligned: t ${T + 1} is not a 1m bucket start`,
    );
    expect(
      seriesProblem(subjects.bar('1h', 'sim', 'BTC/USDT'), ref({ tf: '1h', t: T + 60_000 }), false),
    ).toMatch(/^misaligned/);
    expect(seriesProblem(subjects.bar('1h', 'sim', 'BTC/USDT'), ref({ tf: '1h', t: T }), false)).toBeNull();
  });

  it('summarises a rejected message without its payload, names clipped', () => {
    expect(
      seriesSummary(subjects.bar('1m', 'sim', 'BTC/USDT'), ref({ sym: 'Y'.repeat(500) })).sym,
    ).toHaveLength(65);
  });
});
