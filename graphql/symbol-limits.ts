/**
 * The quota of symbol mutations per request: each `addSymbol`, `setSymbolActive` or
 * `removeSymbol` field (every alias, every fragment spread) starts or stops actors, so a request
 * with more than `symbols.maxMutationsPerRequest` of them is refused whole, before any resolver
 * runs (TM_ERR_LIMIT), rather than half applied. Counted from the parsed document in mercurius'
 * preExecution hook, after the role table (graphql/auth.ts) has let the caller through.
 */
import type { FastifyInstance } from 'fastify';
import {
  type DocumentNode,
  type FragmentDefinitionNode,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import mercurius from 'mercurius';
import { LimitExceededError } from '../core/errors.ts';

export const SYMBOL_MUTATIONS: ReadonlySet<string> = new Set([
  'addSymbol',
  'setSymbolActive',
  'removeSymbol',
]);

/**
 * The most symbol mutations any one mutation operation of the document would run. Fragments are
 * counted once each and multiplied by their spreads (a fragment cycle, which validation refuses
 * anyway, counts as nothing).
 */
export function symbolMutationCount(document: DocumentNode): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions)
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const memo = new Map<string, number>();
  const countIn = (set: SelectionSetNode, visiting: Set<string>): number => {
    let n = 0;
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) n += SYMBOL_MUTATIONS.has(s.name.value) ? 1 : 0;
      else if (s.kind === Kind.INLINE_FRAGMENT) n += countIn(s.selectionSet, visiting);
      else {
        const name = s.name.value;
        const f = fragments.get(name);
        if (!f || visiting.has(name)) continue;
        if (!memo.has(name)) memo.set(name, countIn(f.selectionSet, new Set([...visiting, name])));
        n += memo.get(name)!;
      }
    }
    return n;
  };
  let most = 0;
  for (const d of document.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION || (d as OperationDefinitionNode).operation !== 'mutation')
      continue;
    most = Math.max(most, countIn(d.selectionSet, new Set()));
  }
  return most;
}

/** Refuses a request with more than `max` symbol mutations before it executes. */
export function installSymbolMutationLimit(app: FastifyInstance, max: number): void {
  app.graphql.addHook('preExecution', async (_schema, document) => {
    const n = symbolMutationCount(document);
    if (n <= max) return;
    const e = new LimitExceededError(`symbol mutations in one request (${n} asked)`, max);
    throw new mercurius.ErrorWithProps(e.message, { code: e.code }, e.status);
  });
}
