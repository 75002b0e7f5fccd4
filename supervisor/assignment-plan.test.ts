import { describe, expect, it } from 'vitest';
import { type ActorSpec, type Assignment, SCHEMA_VERSION } from '../core/protocol/index.ts';
import { planAssignments } from './assignment-plan.ts';

const spec = (id: string, options?: Record<string, unknown>): ActorSpec => ({
  id,
  kind: 'exchange',
  exchange: 'sim',
  exchangeKind: 'sim',
  symbols: [],
  ...(options ? { options } : {}),
});
const assigned = (id: string, worker: string, epoch: number, s = spec(id)): [string, Assignment] => [
  id,
  { v: SCHEMA_VERSION, worker, spec: s, epoch, assignedAt: 0 },
];

describe('planAssignments', () => {
  it('places new actors, keeps placed ones and removes those no longer desired', () => {
    const plan = planAssignments(
      [spec('a'), spec('b')],
      new Map([assigned('a', 'w1', 5), assigned('gone', 'w1', 5)]),
      ['w1', 'w2'],
      5,
    );
    expect(plan.remove).toEqual(['gone']);
    expect(plan.assign).toEqual([{ id: 'b', worker: 'w2', spec: spec('b') }]);
    expect(plan.newerEpoch).toBeNull();
  });

  it("moves a dead worker's actors and rewrites a changed spec in place", () => {
    const changed = spec('b', { x: 1 });
    const plan = planAssignments(
      [spec('a'), changed],
      new Map([assigned('a', 'w2', 5), assigned('b', 'w1', 5)]),
      ['w1'],
      5,
    );
    expect([...plan.assign].sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: 'a', worker: 'w1', spec: spec('a'), from: 'w2' },
      { id: 'b', worker: 'w1', spec: changed, from: 'w1' },
    ]);
  });

  it('writes nothing without live workers but still removes', () => {
    const plan = planAssignments([spec('a')], new Map([assigned('x', 'w1', 1)]), [], 1);
    expect(plan).toEqual({ remove: ['x'], assign: [], newerEpoch: null });
  });

  it('reports the newest epoch above its own: the trace of a newer leader', () => {
    const current = new Map([assigned('a', 'w1', 7), assigned('b', 'w1', 9), assigned('c', 'w1', 3)]);
    expect(planAssignments([spec('a')], current, ['w1'], 5).newerEpoch).toBe(9);
    expect(planAssignments([spec('a')], current, ['w1'], 9).newerEpoch).toBeNull();
  });
});
