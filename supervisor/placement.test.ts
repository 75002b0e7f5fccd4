import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { place } from './placement.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `symbol.sim.S${i}`);
const counts = (plan: Map<string, string>, workers: string[]) =>
  workers.map((w) => [...plan.values()].filter((x) => x === w).length);

describe('place', () => {
  it('balances within one actor and places every actor', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 7 }), (n, w) => {
        const workers = Array.from({ length: w }, (_, i) => `w${i}`);
        const plan = place(ids(n), workers, new Map());
        expect(plan.size).toBe(n);
        const c = counts(plan, workers);
        expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('keeps balance and moves few actors when a worker joins or leaves', () => {
    const actors = ids(30);
    const three = ['a', 'b', 'c'];
    const p3 = place(actors, three, new Map());
    const p4 = place(actors, [...three, 'd'], p3);
    const moved = actors.filter((id) => p3.get(id) !== p4.get(id));
    // Only what the new worker needs (7 or 8 actors) moves.
    expect(moved.length).toBe(counts(p4, ['d'])[0]);
    expect(moved.every((id) => p4.get(id) === 'd')).toBe(true);
    const back = place(actors, three, p4);
    // Removing d moves only d's actors.
    expect(actors.filter((id) => back.get(id) !== p4.get(id)).every((id) => p4.get(id) === 'd')).toBe(true);
    const c = counts(back, three);
    expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
  });

  it('is stable when nothing changes', () => {
    const actors = ids(17);
    const workers = ['x', 'y'];
    const p = place(actors, workers, new Map());
    expect(place(actors, workers, p)).toEqual(p);
  });

  it('tolerates a worker listed twice (regression: "placement invariant broken")', () => {
    const plan = place(ids(7), ['w1', 'w2', 'w2', 'w3'], new Map(ids(7).map((id) => [id, 'w1'])));
    expect(counts(plan, ['w1', 'w2', 'w3']).sort()).toEqual([2, 2, 3]);
  });

  it('places nothing without workers', () => {
    expect(place(ids(3), [], new Map()).size).toBe(0);
  });
});
