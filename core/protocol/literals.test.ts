/**
 * Subjects, KV keys and service subjects are built only in core/protocol (names.ts). This scans
 * every .ts and .vue file of the repository outside this folder (sources, tests, benches, the
 * dashboard) for a string or template literal that starts like a subject. The files are parsed
 * with the TypeScript compiler, so comments and doc text may still name subjects.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OWN = join('core', 'protocol') + sep;
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'coverage']);
/** Subject families named in names.ts. */
const PREFIXES = ['md.', 'tickmesh.', 'sys.actor.', 'tm.ctl.'];

/** A file name such as `tickmesh.js` shares a prefix with the subjects but is none. */
const FILE_NAME = /^[\w-]+\.(js|ts|json|md|ya?ml)$/;

function startsLikeSubject(text: string): boolean {
  return PREFIXES.some((p) => text.startsWith(p)) && !FILE_NAME.test(text);
}

/** An opening quote right before a prefix: every such literal has one, most files none. */
const CANDIDATE = new RegExp(`['"\`](${PREFIXES.map((p) => p.replaceAll('.', '\\.')).join('|')})`);

/** 1-based lines of subject-like literals in TypeScript source `code`. */
function literalLines(code: string, fileName: string): number[] {
  if (!CANDIDATE.test(code)) return []; // parsing is the slow part: skip files that cannot match
  const sf = ts.createSourceFile(fileName, code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines: number[] = [];
  const visit = (node: ts.Node) => {
    if (
      (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) &&
      startsLikeSubject(node.text)
    )
      lines.push(sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return [...new Set(lines)].sort((a, b) => a - b);
}

/** Script blocks of a .vue file (TypeScript, parsed) and its template (quoted literals, no comments). */
function vueLiteralLines(code: string, fileName: string): number[] {
  const lines: number[] = [];
  const script = /(<script\b[^>]*>)([\s\S]*?)<\/script>/g;
  let template = code;
  for (const m of code.matchAll(script)) {
    const offset = code.slice(0, m.index! + m[1]!.length).split('\n').length - 1;
    lines.push(...literalLines(m[2]!, fileName).map((l) => l + offset));
    template = template.replace(m[0], m[0].replace(/[^\n]/g, ' '));
  }
  template = template.replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ' '));
  template.split('\n').forEach((line, i) => {
    if (CANDIDATE.test(line)) lines.push(i + 1);
  });
  return lines.sort((a, b) => a - b);
}

function* sourceFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) yield* sourceFiles(path);
    } else if (/\.(ts|vue)$/.test(e.name) && !e.name.endsWith('.d.ts')) yield path;
  }
}

function findSubjectLiterals(code: string, fileName: string): number[] {
  return fileName.endsWith('.vue') ? vueLiteralLines(code, fileName) : literalLines(code, fileName);
}

describe('subject literals', () => {
  it('finds literals in code and ignores comments (the check itself)', () => {
    const code = [
      '// publishes to md.trade.<ex>.<sym>',
      "/** 'md.bar.>' in a doc comment */",
      "const a = 'md.trade.x';",
      'const b = `tickmesh.worker.#{id}.restart`;',
      'const c = f(`sys.actor.#{e}`, "tm.ctl.rules.x");',
      "const d = 'mdx.trade' + `#{x}md.trade`;",
      "const e = join('bin', 'tickmesh.js');",
    ]
      .join('\n')
      .replaceAll('#{', '$' + '{'); // template placeholders, spelled so the linter lets them be
    expect(findSubjectLiterals(code, 'x.ts')).toEqual([3, 4, 5]);
    const vue = [
      '<template>',
      '  <!-- subscribes to md.live.* -->',
      '  <Chart :subject="\'md.live.1m\'" />',
      '</template>',
      '<script setup lang="ts">',
      '// md.bar.1m.sim.X is drawn here',
      "const s = 'md.bar.1m';",
      '</script>',
    ].join('\n');
    expect(findSubjectLiterals(vue, 'x.vue')).toEqual([3, 7]);
  });

  it('has no subject, KV key or service subject literal outside core/protocol', () => {
    const found: string[] = [];
    let scanned = 0;
    for (const path of sourceFiles(ROOT)) {
      const rel = relative(ROOT, path);
      if (rel.startsWith(OWN)) continue;
      scanned++;
      const file = rel.split(sep).join('/');
      const code = readFileSync(path, 'utf8');
      const lines = code.split('\n');
      for (const line of findSubjectLiterals(code, path)) {
        found.push(`${file}:${line}: ${lines[line - 1]!.trim()}`);
      }
    }
    expect(scanned).toBeGreaterThan(100);
    expect(found, 'build these with core/protocol/names.ts').toEqual([]);
  });
});
