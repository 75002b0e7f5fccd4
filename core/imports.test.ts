/**
 * Dependencies between the top-level folders point one way (DESIGN.md "Folders"): this table is
 * the whole rule, checked against every import of every production file. Imports are found by
 * the TypeScript scanner (static `import … from`, `export … from` and dynamic `import('…')`,
 * type-only ones included: a type import couples folders as much as any other).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Folder → the other top-level folders its production files may import. */
const ALLOWED_EDGES = {
  core: [],
  analytics: ['core'],
  actors: ['core', 'analytics'],
  supervisor: ['core', 'analytics'],
  graphql: ['core', 'analytics'],
  launcher: ['core', 'analytics', 'actors', 'supervisor', 'graphql'],
} as const satisfies Record<string, readonly string[]>;

type Folder = keyof typeof ALLOWED_EDGES;
const FOLDERS = Object.keys(ALLOWED_EDGES) as Folder[];

function productionFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : productionFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

/** The top-level folder a path lies in, or null outside the project. */
function topFolder(path: string): string | null {
  const rel = relative(ROOT, path);
  if (rel.startsWith('..')) return null;
  return rel.split(sep)[0] ?? null;
}

interface ImportEdge {
  file: string;
  line: number;
  specifier: string;
  from: string;
  to: string;
}

/** Every import of `file` that reaches another top-level folder. */
function crossFolderImports(file: string): ImportEdge[] {
  const source = readFileSync(file, 'utf8');
  const from = topFolder(file)!;
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  return ts
    .preProcessFile(source, true, true)
    .importedFiles.filter((ref) => ref.fileName.startsWith('.'))
    .map((ref) => ({
      file: relative(ROOT, file),
      line: lineOf(ref.pos),
      specifier: ref.fileName,
      from,
      to: topFolder(resolve(dirname(file), ref.fileName)) ?? '(outside the project)',
    }))
    .filter((edge) => edge.to !== from);
}

describe('folder structure', () => {
  it('follows the table of allowed edges between top-level folders', () => {
    const edges = FOLDERS.flatMap((folder) => productionFiles(join(ROOT, folder))).flatMap(
      crossFolderImports,
    );
    // The scan must see the real imports, or an empty result would pass for the wrong reason.
    expect(edges.some((e) => e.from === 'actors' && e.to === 'core')).toBe(true);
    const broken = edges
      .filter((e) => !(ALLOWED_EDGES[e.from as Folder] as readonly string[]).includes(e.to))
      .map((e) => `${e.file}:${e.line} imports ${e.specifier}: ${e.from} → ${e.to} is not an allowed edge`);
    expect(broken).toEqual([]);
  });

  it('the README folder table names every top-level folder', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Layout'));
    // Generated folders (.gitignore'd: node_modules/, dist/, coverage/) are not part of the layout.
    const ignored = readFileSync(join(ROOT, '.gitignore'), 'utf8')
      .split('\n')
      .filter((line) => /^[^/#]+\/$/.test(line.trim()))
      .map((line) => line.trim().slice(0, -1));
    const folders = readdirSync(ROOT).filter(
      (name) => !name.startsWith('.') && !ignored.includes(name) && statSync(join(ROOT, name)).isDirectory(),
    );
    expect(folders).toEqual(expect.arrayContaining([...FOLDERS, 'ui']));
    expect(folders.filter((name) => !table.includes(`\`${name}/\``))).toEqual([]);
  });

  it('keeps every production file within 600 lines (one idea a file)', () => {
    const MAX_LINES = 600;
    // Code generated from the schema (`npm run codegen`) grows with it and is not written by hand.
    const files = FOLDERS.flatMap((folder) => productionFiles(join(ROOT, folder))).filter(
      (file) => !file.includes('/generated/'),
    );
    expect(files.length).toBeGreaterThan(50);
    const long = files
      .map((file) => ({ file: relative(ROOT, file), lines: readFileSync(file, 'utf8').split('\n').length }))
      .filter((f) => f.lines > MAX_LINES)
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });
});
