import { describe, expect, it } from 'vitest';
import { type Assignment, SCHEMA_VERSION } from '../core/protocol/index.ts';
import { AssignmentView, type ListedAssignment } from './assignment-view.ts';

const on = (worker: string, epoch = 1): Assignment => ({
  v: SCHEMA_VERSION,
  worker,
  spec: { id: 'a', kind: 'writer' },
  epoch,
  assignedAt: 0,
});
const listing = (entries: [string, Assignment, number][]) =>
  new Map<string, ListedAssignment>(
    entries.map(([id, assignment, revision]) => [id, { assignment, revision }]),
  );

describe('AssignmentView', () => {
  it('ignores a watch entry older than what it holds', () => {
    const v = new AssignmentView();
    expect(v.applyEntry('a', 5, on('w2'))).toBe(true);
    expect(v.applyEntry('a', 4, on('w1'))).toBe(false);
    expect(v.get('a')?.worker).toBe('w2');
    expect(v.applyEntry('a', 6, null)).toBe(true);
    expect(v.get('a')).toBeUndefined();
  });

  it('resync adopts an assignment the watch has not delivered (yet)', () => {
    const v = new AssignmentView();
    expect(v.applyListing(listing([['a', on('w1'), 3]]), 3, [])).toEqual(['a']);
    expect(v.get('a')?.worker).toBe('w1');
  });

  it('resync taken before a newer watch entry does not undo it', () => {
    const v = new AssignmentView();
    v.applyEntry('a', 8, on('w2'));
    v.applyListing(listing([['a', on('w1'), 7]]), 7, []);
    expect(v.get('a')?.worker).toBe('w2');
  });

  it('resync drops a key it no longer lists only when the listing is newer than the view', () => {
    const v = new AssignmentView();
    v.applyEntry('a', 5, on('w1'));
    v.applyEntry('b', 9, on('w1'));
    // Listed up to revision 7: a (known at 5) was deleted since, b (known at 9) is newer than the listing.
    const ids = v.applyListing(listing([['c', on('w1'), 7]]), 7, ['hosted']);
    expect(v.get('a')).toBeUndefined();
    expect(v.get('b')?.worker).toBe('w1');
    expect(ids.sort()).toEqual(['a', 'b', 'c', 'hosted']);
  });

  it('a malformed entry still counts for ordering', () => {
    const v = new AssignmentView();
    v.skipEntry('a', 4);
    v.applyListing(listing([['a', on('w1'), 3]]), 3, []);
    expect(v.get('a')).toBeUndefined();
  });
});
