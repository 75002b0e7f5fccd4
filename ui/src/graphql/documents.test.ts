// The dashboard's GraphQL documents, validated against the server's schema: a misspelled field
// or a wrong argument fails here, naming the document, instead of at run time in the browser.
import {
  buildSchema,
  type DefinitionNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  Kind,
  type OperationDefinitionNode,
  parse,
  validate,
  visit,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import schemaSdl from '../../../graphql/schema.graphql?raw';

const documentFiles: Record<string, string> = import.meta.glob('../**/*.graphql', {
  query: '?raw',
  import: 'default',
  eager: true,
});
const sourceFiles: Record<string, string> = import.meta.glob(['../**/*.{ts,vue}', '!../**/generated/**'], {
  query: '?raw',
  import: 'default',
  eager: true,
});

function spreadNames(node: DefinitionNode): string[] {
  const names: string[] = [];
  visit(node, { FragmentSpread: (s) => void names.push(s.name.value) });
  return names;
}

/** Every problem in `files` (path → GraphQL source) as "document: message"; empty when valid. */
export function documentErrors(sdl: string, files: Record<string, string>): string[] {
  const schema = buildSchema(sdl);
  const errors: string[] = [];
  const operations: OperationDefinitionNode[] = [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const [path, source] of Object.entries(files)) {
    let doc: DocumentNode;
    try {
      doc = parse(source);
    } catch (e) {
      errors.push(`${path}: ${(e as Error).message}`);
      continue;
    }
    for (const def of doc.definitions) {
      if (def.kind === Kind.OPERATION_DEFINITION) operations.push(def);
      else if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
      else errors.push(`${path}: only operations and fragments belong in a document, not ${def.kind}`);
    }
  }
  const used = new Set<string>();
  for (const op of operations) {
    // The operation with the fragments it reaches, as the client sends it.
    const needed = new Map<string, FragmentDefinitionNode>();
    const queue = spreadNames(op);
    for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
      const fragment = fragments.get(name);
      if (!fragment || needed.has(name)) continue;
      needed.set(name, fragment);
      queue.push(...spreadNames(fragment));
    }
    for (const name of needed.keys()) used.add(name);
    const doc: DocumentNode = { kind: Kind.DOCUMENT, definitions: [op, ...needed.values()] };
    const label = op.name?.value ?? `anonymous ${op.operation}`;
    for (const e of validate(schema, doc)) errors.push(`${label}: ${e.message}`);
  }
  for (const name of fragments.keys())
    if (!used.has(name)) errors.push(`fragment ${name}: used by no operation`);
  return errors;
}

describe('dashboard GraphQL documents', () => {
  it('has documents to check', () => {
    expect(Object.keys(documentFiles).length).toBeGreaterThan(0);
  });

  it('validate against graphql/schema.graphql', () => {
    expect(documentErrors(schemaSdl, documentFiles)).toEqual([]);
  });

  it('live only in .graphql files, so all of them are checked here and typed by codegen', () => {
    const inline = Object.entries(sourceFiles)
      .filter(
        ([path, source]) =>
          !path.endsWith('/documents.test.ts') && /\bgql\s*[`(]|\bgraphql\s*\(/.test(source),
      )
      .map(([path]) => path);
    expect(inline).toEqual([]);
  });

  it('reports a misspelled field with the name of its document', () => {
    const misspelled = Object.fromEntries(
      Object.entries(documentFiles).map(([path, source]) => [path, source.replace(/\btimeMs\b/, 'timeMS')]),
    );
    const errors = documentErrors(schemaSdl, misspelled);
    const message = 'Cannot query field "timeMS" on type "Candle". Did you mean "timeMs" or "time"?';
    expect(errors).toEqual([`Candles: ${message}`, `LiveCandles: ${message}`]);
  });

  it('reports an unknown argument, a missing fragment and a syntax error', () => {
    const errors = documentErrors(schemaSdl, {
      'a.graphql': 'query Bad { candles(exchange: "x", symbol: "y", timeframe: "1m", size: 3) { ...Nope } }',
      'b.graphql': 'query {',
    });
    expect(errors).toContain('Bad: Unknown argument "size" on field "Query.candles".');
    expect(errors).toContain('Bad: Unknown fragment "Nope".');
    expect(errors.some((e) => e.startsWith('b.graphql: Syntax Error'))).toBe(true);
  });
});
