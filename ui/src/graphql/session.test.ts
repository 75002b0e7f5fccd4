import { describe, expect, it } from 'vitest';
import { ACCESS_TOKEN_KEY } from './client';
import { ACCESS_EXPIRES_KEY, hasSession, storeSession } from './session';

function memoryStorage(): Pick<Storage, 'getItem' | 'setItem'> {
  const items = new Map<string, string>();
  return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v) };
}

describe('dashboard session', () => {
  const now = Date.parse('2026-12-08T03:00:00Z');

  it('has none without a token', () => {
    expect(hasSession(memoryStorage(), now)).toBe(false);
  });

  it('keeps a token until its expiry, and not after', () => {
    const s = memoryStorage();
    storeSession(s, 'tok', '2026-12-08T03:15:00Z');
    expect(s.getItem(ACCESS_TOKEN_KEY)).toBe('tok');
    expect(hasSession(s, now)).toBe(true);
    expect(hasSession(s, Date.parse('2026-12-08T03:15:00Z'))).toBe(false);
  });

  it('takes a token stored without an expiry as usable', () => {
    const s = memoryStorage();
    s.setItem(ACCESS_TOKEN_KEY, 'tok');
    expect(s.getItem(ACCESS_EXPIRES_KEY)).toBeNull();
    expect(hasSession(s, now)).toBe(true);
  });
});
