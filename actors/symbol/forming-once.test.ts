import { describe, expect, it } from 'vitest';
import { FormingOnce } from './forming-once.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('FormingOnce', () => {
  it('passes a forming bar once per change and drops exact repeats per subject', () => {
    const once = new FormingOnce();
    expect(once.changed('md.live.1m.x.A', bytes('{"c":1}'))).toBe(true);
    expect(once.changed('md.live.1m.x.A', bytes('{"c":1}'))).toBe(false);
    expect(once.changed('md.live.5m.x.A', bytes('{"c":1}'))).toBe(true);
    expect(once.changed('md.live.1m.x.A', bytes('{"c":2}'))).toBe(true);
    expect(once.changed('md.live.1m.x.A', bytes('{"c":1}'))).toBe(true);
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
