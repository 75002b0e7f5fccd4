import { describe, expect, it } from 'vitest';
import { staleAfterMs } from './staleness.ts';

const s = {
  k: 10,
  minStaleMs: 5000,
  maxStaleMs: 900_000,
  alpha: 0.2,
  checkEveryMs: 1000,
  maxBackoffMs: 600_000,
};

describe('staleAfterMs', () => {
  it('is k × the expected interval, clamped to [min, max]; max before any interval is known', () => {
    expect(staleAfterMs(s, undefined, 0)).toBe(900_000);
    expect(staleAfterMs(s, 100, 0)).toBe(5000);
    expect(staleAfterMs(s, 5000, 0)).toBe(50_000);
    expect(staleAfterMs(s, 1_000_000, 0)).toBe(900_000);
  });

  it('doubles per quiet verdict, up to maxBackoffMs (or the base when that is higher)', () => {
    expect(staleAfterMs(s, 1000, 1)).toBe(20_000);
    expect(staleAfterMs(s, 1000, 5)).toBe(320_000);
    expect(staleAfterMs(s, 1000, 10)).toBe(600_000);
    expect(staleAfterMs(s, undefined, 3)).toBe(900_000);
  });
});
