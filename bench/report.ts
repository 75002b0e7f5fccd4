/** Statistics, the printed comparison table, and the JSON results file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles. */
export function summarize(samples: readonly number[]): Summary {
  const xs = [...samples].sort((a, b) => a - b);
  const at = (p: number) =>
    xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? Number.NaN;
  const mean = xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : Number.NaN;
  return { n: xs.length, p50: at(0.5), p99: at(0.99), max: xs.at(-1) ?? Number.NaN, mean };
}

/** Least-squares slope of y over x. */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** Standard error of the least-squares slope. */
export function slopeStdErr(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 3) return Number.NaN;
  const b = slope(points);
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const a = my - b * mx;
  const sse = points.reduce((s, p) => s + (p.y - a - b * p.x) ** 2, 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return Math.sqrt(sse / (n - 2) / sxx);
}

export type Verdict = 'pass' | 'FAIL' | 'info';

export interface TableRow {
  metric: string;
  ours: string;
  ceiling: string;
  pct: string;
  target: string;
  verdict: Verdict | string;
}

const nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const fmtInt = (n: number) => (Number.isFinite(n) ? nf.format(n) : '—');
export const fmtRate = (n: number, unit = '/s') => (Number.isFinite(n) ? `${nf.format(n)}${unit}` : '—');
export const fmtMs = (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(1) : n.toFixed(0)} ms` : '—');
export const fmtPct = (ours: number, ceiling: number) =>
  Number.isFinite(ours) && Number.isFinite(ceiling) && ceiling > 0
    ? `${((100 * ours) / ceiling).toFixed(0)} %`
    : '—';
export const fmtLatency = (s: Summary) =>
  s.n === 0
    ? 'no samples'
    : `p50 ${fmtMs(s.p50)} · p99 ${fmtMs(s.p99)} · max ${fmtMs(s.max)} (n=${fmtInt(s.n)})`;

export function verdict(ok: boolean): Verdict {
  return ok ? 'pass' : 'FAIL';
}

export function renderTable(rows: readonly TableRow[]): string {
  const head: TableRow = {
    metric: 'metric',
    ours: 'ours',
    ceiling: 'ceiling (same run)',
    pct: '% of ceiling',
    target: 'target',
    verdict: 'verdict',
  };
  const keys = Object.keys(head) as (keyof TableRow)[];
  const width = (k: keyof TableRow) => Math.max(...[head, ...rows].map((r) => r[k].length));
  const widths = keys.map(width);
  const line = (r: TableRow) => `| ${keys.map((k, i) => r[k].padEnd(widths[i]!)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

export function printReport(rows: readonly TableRow[], notes: readonly string[]): void {
  const out = ['', renderTable(rows), '', 'Notes:', ...notes.map((n) => `- ${n}`), ''];
  process.stdout.write(out.join('\n'));
}

export function writeResults(results: unknown): string {
  const dir = fileURLToPath(new URL('./results', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replaceAll(':', '-').replace(/\..*$/, '')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

/** A table row; the columns not given are '—' and the verdict 'info'. */
export const row = (r: Partial<TableRow> & Pick<TableRow, 'metric'>): TableRow => ({
  ours: '—',
  ceiling: '—',
  pct: '—',
  target: '—',
  verdict: 'info',
  ...r,
});
