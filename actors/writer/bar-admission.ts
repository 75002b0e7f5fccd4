/**
 * What the bar writer lets into the database. A BARS message is not trusted for being on the
 * bus: its content must name the series its subject names (exchange, symbol, timeframe), its
 * time must be a bucket start of its timeframe, and its (exchange, symbol) must be a known pair
 * (a row of `symbols`, active or not). Anything else is quarantined by the writer and acked.
 *
 * The known pairs are a cache (`KnownSymbols`), re-read periodically and whenever a bar names a
 * pair it does not hold; never once per bar.
 */
import type { Pool } from '../../core/db.ts';
import { subjects, TIMEFRAME_MS, type Timeframe } from '../../core/protocol/index.ts';

/** The series a closed bar or an analytics update names. */
export interface SeriesRef {
  ex: string;
  sym: string;
  tf: Timeframe;
  t: number;
}

/** Longest name kept in a quarantine reason or payload. */
const MAX_NAME = 64;
const clip = (s: string) => (s.length > MAX_NAME ? `${s.slice(0, MAX_NAME)}…` : s);

/** The subject a message of this series belongs on, or null when its names make no subject. */
function subjectOf(ref: SeriesRef, update: boolean): string | null {
  try {
    return update ? subjects.analyticsUpdate(ref.tf, ref.ex, ref.sym) : subjects.bar(ref.tf, ref.ex, ref.sym);
  } catch {
    return null; // a symbol that cannot be a token cannot be on any subject
  }
}

/**
 * Why a validated message cannot be stored as it stands (`<kind>: <detail>`, the quarantine
 * reason), or null. `update`: an analytics update (`md.bar.ind.…`) rather than a closed bar.
 */
export function seriesProblem(subject: string, ref: SeriesRef, update: boolean): string | null {
  if (subjectOf(ref, update) !== subject)
    return `subject mismatch: content names ${clip(ref.ex)}/${clip(ref.sym)} ${ref.tf}, subject is ${clip(subject)}`;
  if (ref.t % TIMEFRAME_MS[ref.tf] !== 0) return `misaligned: t ${ref.t} is not a ${ref.tf} bucket start`;
  return null;
}

/** A short description of a rejected message for the quarantine subject (never the whole payload). */
export function seriesSummary(subject: string, ref: SeriesRef): { subject: string } & SeriesRef {
  return { subject: clip(subject), ex: clip(ref.ex), sym: clip(ref.sym), tf: ref.tf, t: ref.t };
}

/** The (exchange, symbol) pairs of the `symbols` table, as last read. */
export class KnownSymbols {
  private pairs = new Set<string>();
  private reads = 0;

  /** Completed reads so far: a pair missing from read n may have been added after it. */
  get generation(): number {
    return this.reads;
  }

  has(ex: string, sym: string): boolean {
    return this.pairs.has(`${ex}\u0000${sym}`);
  }

  async refresh(pool: Pool): Promise<void> {
    const { rows } = await pool.query<{ exchange: string; symbol: string }>(
      'SELECT exchange, symbol FROM symbols',
    );
    this.pairs = new Set(rows.map((r) => `${r.exchange}\u0000${r.symbol}`));
    this.reads++;
  }
}
