/**
 * Forming bars are published once per change. The throttle has two paths into a publication
 * (a trade after the throttle interval publishes at once; otherwise a timer queues a `forming`
 * message): when the timer's message waited in the mailbox behind a trade that already
 * published, the same forming state went out twice ~1 ms apart (4.3 % of forming messages were
 * exact repeats). The actor now publishes only when something changed since the last
 * publication, and this filter drops any per-subject repeat of identical bytes whatever the path.
 */
export class FormingOnce {
  private readonly last = new Map<string, Uint8Array>();

  /** Whether `data` differs from what was last published on `subject` (and remembers it). */
  changed(subject: string, data: Uint8Array): boolean {
    const prev = this.last.get(subject);
    if (prev && prev.length === data.length && Buffer.compare(prev, data) === 0) return false;
    this.last.set(subject, data);
    return true;
  }

  /** Forgets subjects whose bars closed (keeps the map at one entry per live timeframe). */
  retain(subjects: Iterable<string>): void {
    const keep = new Set(subjects);
    for (const s of this.last.keys()) if (!keep.has(s)) this.last.delete(s);
  }
}
