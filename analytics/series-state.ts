/**
 * The revisable state behind IndicatorSeries and FeatureSeries: a fixed vector of scalars plus a
 * few rings of recent bar values, addressed by bar sequence number (0 = first bar applied).
 *
 * Revisions: before each bar is applied the scalars are checkpointed (one copy per bar, the last
 * `depth` kept). Revising or inserting a bar up to `depth` bars back restores the checkpoint taken
 * before it and re-applies it and the bars after it, which the rings still hold (each ring keeps
 * its window plus `depth` + 1 values). This is the "keep the state as of before the bar and
 * re-apply" approach, generalised from the last bar to the bar builder's revision window.
 *
 * Everything is numbers: NaN stands for "not defined yet" in memory and becomes null in JSON.
 */
import { BadArgumentError, ValidationError } from '../core/errors.ts';

export const STATE_VERSION = 1 as const;

/** Builds `{ name: index }` for a scalar layout; the order is part of the state format. */
export function layout<const N extends string>(names: readonly N[]): Readonly<Record<N, number>> {
  const out = {} as Record<N, number>;
  names.forEach((name, i) => {
    out[name] = i;
  });
  return Object.freeze(out);
}

export interface SeriesStateJson {
  v: typeof STATE_VERSION;
  /** Identifies the scalar layout and ring windows; a snapshot from another layout is refused. */
  kind: string;
  depth: number;
  scalars: (number | null)[];
  /** Scalars before each of the last min(n, depth) bars, oldest first. */
  checkpoints: (number | null)[][];
  /** Per ring, the last min(n, capacity) values, oldest first. */
  rings: (number | null)[][];
}

/** A bar revision or insertion further back than the series keeps checkpoints for. */
export class RevisionTooOldError extends BadArgumentError {
  constructor(
    readonly t: number,
    readonly depth: number,
  ) {
    super('bar', `t=${t} is older than the last ${depth} bars this series can revise`);
  }
}

const toJson = (x: number): number | null => (Number.isNaN(x) ? null : x);
const fromJson = (x: unknown): number => (x === null ? Number.NaN : (x as number));

export class SeriesState {
  /** Scalars; slot 0 is always the number of bars applied, slot 1 the last bar's open time. */
  readonly s: Float64Array;
  readonly rings: Float64Array[];
  readonly caps: number[];
  /** Open times of recent bars (ring, capacity depth + 1), to locate revisions. */
  readonly times: Float64Array;
  private readonly cp: Float64Array;
  private readonly scratch: Float64Array;
  private readonly scratchRing: Float64Array;

  constructor(
    readonly kind: string,
    readonly size: number,
    readonly depth: number,
    /** Longest look-back each ring serves (values older than the newest one). */
    windows: readonly number[],
  ) {
    if (!Number.isInteger(depth) || depth < 1) throw new BadArgumentError('depth', 'must be an integer >= 1');
    this.s = new Float64Array(size).fill(Number.NaN);
    this.s[0] = 0;
    this.caps = windows.map((w) => w + depth + 1);
    this.rings = this.caps.map((c) => new Float64Array(c).fill(Number.NaN));
    this.times = new Float64Array(depth + 1).fill(Number.NaN);
    this.cp = new Float64Array(size * depth);
    this.scratch = new Float64Array(size);
    this.scratchRing = new Float64Array(windows.length + 1);
  }

  get n(): number {
    return this.s[0]! | 0;
  }

  get lastT(): number {
    return this.s[1]!;
  }

  timeAt(seq: number): number {
    return this.times[seq % this.times.length]!;
  }

  /** Saves the scalars as "before bar n". */
  checkpoint(): void {
    const { s, cp, size } = this;
    const base = ((s[0]! | 0) % this.depth) * size;
    for (let i = 0; i < size; i++) cp[base + i] = s[i]!;
  }

  /** Restores the scalars saved before bar `seq` (which must be one of the last `depth`). */
  rewindTo(seq: number): void {
    const base = (seq % this.depth) * this.size;
    for (let i = 0; i < this.size; i++) this.s[i] = this.cp[base + i]!;
  }

  /**
   * Where a closed bar with open time `t` goes: `n` to append, or the sequence number to rewind
   * to (the first bar with time >= t), or -1 when that is older than the checkpoints reach.
   */
  locate(t: number): number {
    const n = this.n;
    if (n === 0 || t > this.lastT) return n;
    const oldest = Math.max(0, n - this.depth);
    let seq = n - 1;
    while (seq > oldest && this.timeAt(seq - 1) >= t) seq--;
    // Stopped at the oldest checkpoint while the bar before it is still >= t: too far back.
    if (seq > 0 && seq === oldest && this.timeAt(seq - 1) >= t) return -1;
    return seq;
  }

  /** Remembers everything a preview may overwrite (scalars, slot n of every ring). */
  beginPreview(): void {
    this.scratch.set(this.s);
    const n = this.n;
    for (let r = 0; r < this.rings.length; r++) this.scratchRing[r] = this.rings[r]![n % this.caps[r]!]!;
    this.scratchRing[this.rings.length] = this.times[n % this.times.length]!;
  }

  endPreview(): void {
    this.s.set(this.scratch);
    const n = this.n;
    for (let r = 0; r < this.rings.length; r++) this.rings[r]![n % this.caps[r]!] = this.scratchRing[r]!;
    this.times[n % this.times.length] = this.scratchRing[this.rings.length]!;
  }

  toJSON(): SeriesStateJson {
    const n = this.n;
    const ringOut = (buf: Float64Array, cap: number): (number | null)[] => {
      const out: (number | null)[] = [];
      for (let seq = Math.max(0, n - cap); seq < n; seq++) out.push(toJson(buf[seq % cap]!));
      return out;
    };
    const checkpoints: (number | null)[][] = [];
    for (let seq = Math.max(0, n - this.depth); seq < n; seq++) {
      const base = (seq % this.depth) * this.size;
      checkpoints.push(Array.from(this.cp.subarray(base, base + this.size), toJson));
    }
    return {
      v: STATE_VERSION,
      kind: this.kind,
      depth: this.depth,
      scalars: Array.from(this.s, toJson),
      checkpoints,
      rings: [...this.rings.map((r, i) => ringOut(r, this.caps[i]!)), ringOut(this.times, this.times.length)],
    };
  }

  /** Loads a snapshot made by `toJSON` of a state with the same kind, size, depth and windows. */
  load(json: unknown): void {
    const bad = (why: string) => new ValidationError(`${this.kind} state`, why);
    const j = json as SeriesStateJson;
    if (!j || typeof j !== 'object') throw bad('not an object');
    if (j.v !== STATE_VERSION || j.kind !== this.kind) throw bad(`expected ${this.kind} v${STATE_VERSION}`);
    if (j.depth !== this.depth) throw bad(`depth ${j.depth} differs from ${this.depth}`);
    if (!Array.isArray(j.scalars) || j.scalars.length !== this.size) throw bad('scalar count differs');
    const n = fromJson(j.scalars[0]);
    if (!Number.isInteger(n) || n < 0) throw bad('bar count is not a natural number');
    if (!Array.isArray(j.rings) || j.rings.length !== this.rings.length + 1) throw bad('ring count differs');
    if (!Array.isArray(j.checkpoints) || j.checkpoints.length !== Math.min(n, this.depth))
      throw bad('checkpoint count differs');
    const all = [...this.rings, this.times];
    const caps = [...this.caps, this.times.length];
    j.rings.forEach((values, r) => {
      const cap = caps[r]!;
      if (!Array.isArray(values) || values.length !== Math.min(n, cap)) throw bad(`ring ${r} length differs`);
      const first = n - values.length;
      values.forEach((x, i) => {
        all[r]![(first + i) % cap] = fromJson(x);
      });
    });
    j.checkpoints.forEach((values, i) => {
      if (!Array.isArray(values) || values.length !== this.size) throw bad('checkpoint size differs');
      const seq = n - j.checkpoints.length + i;
      values.forEach((x, k) => {
        this.cp[(seq % this.depth) * this.size + k] = fromJson(x);
      });
    });
    j.scalars.forEach((x, i) => {
      this.s[i] = fromJson(x);
    });
  }
}
