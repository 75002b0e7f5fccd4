import { describe, expect, it } from 'vitest';
import { headerValue, parseRetryAfter } from './retry-after.ts';

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-03-11T14:00:00Z');

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('30', now)).toBe(30_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
  });

  it('reads an HTTP date against the given now (not the wall clock)', () => {
    expect(parseRetryAfter('Tue, 11 Mar 2025 14:00:20 GMT', now)).toBe(20_000);
    expect(parseRetryAfter('Tue, 11 Mar 2025 13:59:00 GMT', now)).toBe(0); // past: go now
  });

  it('is null when absent or unreadable', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter('', now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
  });
});

describe('headerValue', () => {
  it('finds a header whatever the case of its name', () => {
    expect(headerValue({ 'retry-after': '5' }, 'Retry-After')).toBe('5');
    expect(headerValue({ 'Retry-After': ['7'] }, 'retry-after')).toBe('7');
    expect(headerValue({ other: '1' }, 'Retry-After')).toBeUndefined();
    expect(headerValue(undefined, 'Retry-After')).toBeUndefined();
  });
});
