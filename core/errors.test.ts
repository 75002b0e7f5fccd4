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

describe('error codes', () => {
  it('are all documented in docs/errors.md', () => {
    const used = new Set<string>();
    for (const dir of SOURCE_DIRS) {
      for (const file of sources(join(ROOT, dir))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/'(TM_ERR_[A-Z_]+)'/g)) used.add(m[1]!);
      }
    }
    expect(used.size).toBeGreaterThan(5);
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    const missing = [...used].filter((code) => !doc.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });
});
