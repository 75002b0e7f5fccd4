import { describe, expect, it } from 'vitest';
import { subjects } from '../../core/protocol/index.ts';
import { FormingOnce } from './forming-once.ts';

const m1 = subjects.live('1m', 'x', 'A');
const m5 = subjects.live('5m', 'x', 'A');

const bytes = (s: string) => new TextEncoder().encode(s);

describe('FormingOnce', () => {
  it('passes a forming bar once per change and drops exact repeats per subject', () => {
    const once = new FormingOnce();
    expect(once.changed(m1, bytes('{"c":1}'))).toBe(true);
    expect(once.changed(m1, bytes('{"c":1}'))).toBe(false);
    expect(once.changed(m5, bytes('{"c":1}'))).toBe(true);
    expect(once.changed(m1, bytes('{"c":2}'))).toBe(true);
    expect(once.changed(m1, bytes('{"c":1}'))).toBe(true);
  });

  it('forgets subjects it is not told to keep', () => {
    const once = new FormingOnce();
    once.changed('a', bytes('1'));
    once.changed('b', bytes('1'));
    once.retain(['b']);
    expect(once.changed('a', bytes('1'))).toBe(true);
    expect(once.changed('b', bytes('1'))).toBe(false);
  });
});
