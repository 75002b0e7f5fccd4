// The committed generated types (`npm run codegen`) must be what the generator makes from the
// current schema and documents, so a schema edit cannot drift away from the types that use it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generate } from '../codegen.ts';

describe('generated GraphQL types', () => {
  it('are up to date with graphql/schema.graphql and the dashboard documents (run `npm run codegen`)', async () => {
    const files = await generate();
    expect(files.map((f) => f.path)).toEqual([
      'ui/src/graphql/generated/operations.ts',
      'graphql/generated/schema-types.ts',
      'graphql/generated/resolvers-types.ts',
    ]);
    for (const file of files) {
      const committed = readFileSync(new URL(`../${file.path}`, import.meta.url), 'utf8');
      expect(committed, `${file.path} is stale: run npm run codegen`).toBe(file.content);
    }
  });
});
