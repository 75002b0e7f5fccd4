/**
 * A worker's view of KV `actor-assign`, fed by the watch and by periodic full listings
 * (resync). Every key carries the KV revision it was last seen at, so whichever source is
 * older never undoes what the newer one showed: a listing taken before a watch entry arrived
 * cannot bring back a moved actor, and a lagging watch cannot hide one the listing found.
 */
import type { Assignment } from '../core/protocol/index.ts';

export interface ListedAssignment {
  assignment: Assignment;
  revision: number;
}

export class AssignmentView {
  private readonly assignments = new Map<string, Assignment>();
  private readonly revisions = new Map<string, number>();

  get(id: string): Assignment | undefined {
    return this.assignments.get(id);
  }

  ids(): string[] {
    return [...this.assignments.keys()];
  }

  /**
   * A watch entry: the assignment, or null when the key was deleted. False (ignored) when it
   * is older than what the view already holds.
   */
  applyEntry(id: string, revision: number, assignment: Assignment | null): boolean {
    if (!this.see(id, revision)) return false;
    if (assignment) this.assignments.set(id, assignment);
    else this.assignments.delete(id);
    return true;
  }

  /** A watch entry that could not be decoded: its revision still counts, its value does not. */
  skipEntry(id: string, revision: number): void {
    this.see(id, revision);
  }

  /**
   * A full listing of the bucket (live keys only) in which `newest` is the highest revision.
   * A key missing from it is dropped only if the view knew it at a revision the listing has
   * already passed. Returns every id to reconcile: listed, known, or hosted (`hosted`).
   */
  applyListing(
    listing: ReadonlyMap<string, ListedAssignment>,
    newest: number,
    hosted: Iterable<string>,
  ): string[] {
    const ids = new Set([...hosted, ...this.assignments.keys(), ...listing.keys()]);
    for (const id of ids) {
      const f = listing.get(id);
      const known = this.revisions.get(id) ?? 0;
      if (f && f.revision >= known) {
        this.assignments.set(id, f.assignment);
        this.revisions.set(id, f.revision);
      } else if (!f && known <= newest) {
        this.assignments.delete(id);
      }
    }
    return [...ids];
  }

  private see(id: string, revision: number): boolean {
    if (revision < (this.revisions.get(id) ?? 0)) return false;
    this.revisions.set(id, revision);
    return true;
  }
}
