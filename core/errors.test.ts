import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['core', 'analytics', 'actors', 'supervisor', 'graphql', 'launcher'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

const ERRORS_MODULE = join(ROOT, 'core/errors.ts');

/** Code → the class in core/errors.ts that carries it. */
function errorClasses(): Map<string, string> {
  const out = new Map<string, string>();
  const text = readFileSync(ERRORS_MODULE, 'utf8');
  for (const m of text.matchAll(
    /class (\w+) extends \w+ \{(?:(?!\nexport class )[\s\S])*?'(TM_ERR_[A-Z_]+)'/g,
  ))
    out.set(m[2]!, m[1]!);
  return out;
}

/**
 * Codes the production sources raise: written as a literal outside core/errors.ts, or carried by
 * a class of core/errors.ts that another file constructs or extends. A class nobody throws does
 * not make its code "used".
 */
function usedCodes(): Set<string> {
  const files = SOURCE_DIRS.flatMap((dir) => sources(join(ROOT, dir)))
    .filter((file) => file !== ERRORS_MODULE)
    .map((file) => readFileSync(file, 'utf8'));
  const used = new Set<string>();
  for (const text of files) for (const m of text.matchAll(/'(TM_ERR_[A-Z_]+)'/g)) used.add(m[1]!);
  for (const [code, cls] of errorClasses()) {
    const raised = new RegExp(`(new|extends) ${cls}\\b`);
    if (files.some((text) => raised.test(text))) used.add(code);
  }
  return used;
}

/** Codes in the first column of docs/errors.md's table. */
function documentedCodes(): Set<string> {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  return new Set([...doc.matchAll(/^\|\s*`(TM_ERR_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]!));
}

describe('error codes', () => {
  it('are all documented in docs/errors.md', () => {
    const used = new Set([...usedCodes(), ...errorClasses().keys()]);
    expect(used.size).toBeGreaterThan(5);
    const documented = documentedCodes();
    expect([...used].filter((code) => !documented.has(code))).toEqual([]);
  });

  it('of GraphQL itself (graphql/error-format.ts) are documented in docs/errors.md, and only those', () => {
    const pattern = '(?:GRAPHQL|INTERNAL)_[A-Z_]+';
    const source = readFileSync(join(ROOT, 'graphql/error-format.ts'), 'utf8');
    const used = [...source.matchAll(new RegExp(`= '(${pattern})'`, 'g'))].map((m) => m[1]!);
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    const documented = [...doc.matchAll(new RegExp(`^\\|\\s*\`(${pattern})\`\\s*\\|`, 'gm'))].map(
      (m) => m[1]!,
    );
    expect(used.length).toBe(3);
    expect(documented.sort()).toEqual(used.sort());
  });

  it('documented in docs/errors.md are all used in the source', () => {
    const documented = documentedCodes();
    expect(documented.size).toBeGreaterThan(5);
    const used = usedCodes();
    expect([...documented].filter((code) => !used.has(code))).toEqual([]);
  });
});
