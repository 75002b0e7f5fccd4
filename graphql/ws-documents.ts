/**
 * Subscription documents for the graphql-ws server: our own schema (built with our graphql
 * copy; mercurius bundles another, see audit-trail.ts) with the Subscription resolvers attached,
 * and the checks a subscribe message passes before anything runs: parse (bounded tokens),
 * validation, one subscription operation (queries and mutations belong to HTTP), and the
 * field/depth limits. The shared-execution key is derived here too.
 */
import {
  buildSchema,
  type DocumentNode,
  type FieldNode,
  GraphQLError,
  type GraphQLFieldResolver,
  type GraphQLSchema,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  parse,
  stripIgnoredCharacters,
  validate,
} from 'graphql';
import { SubscriptionsOnlyError, TmError } from '../core/errors.ts';
import { checkNoNul, measureOperation } from './limits.ts';

/** One entry of an `error` message's payload (or of `errors` in a result). */
export interface PayloadError {
  message: string;
  locations?: readonly { line: number; column: number }[];
  extensions?: Record<string, unknown>;
}

export interface SubscriptionResolver {
  subscribe: GraphQLFieldResolver<unknown, unknown>;
  resolve?: GraphQLFieldResolver<unknown, unknown>;
}

/** The schema of `sdl` whose Subscription fields run `resolvers`. */
export function subscriptionSchema(
  sdl: string,
  resolvers: Record<string, SubscriptionResolver>,
): GraphQLSchema {
  const schema = buildSchema(sdl);
  const fields = schema.getSubscriptionType()?.getFields() ?? {};
  for (const [name, r] of Object.entries(resolvers)) {
    const field = fields[name];
    if (!field) continue;
    field.subscribe = r.subscribe;
    if (r.resolve) field.resolve = r.resolve;
  }
  return schema;
}

export function payloadErrorOf(e: unknown): PayloadError {
  if (e instanceof TmError) return { message: e.message, extensions: { code: e.code } };
  if (e instanceof GraphQLError) {
    const json = e.toJSON();
    return { ...json, extensions: { ...json.extensions } };
  }
  return { message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
}

export interface DocumentLimits {
  /** Field selections (aliases and fragments counted), and also root fields plus aliases. */
  maxFields: number;
  maxDepth: number;
}

export interface CheckedDocument {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  /** Root field names (the role table and the visibility scope look at them). */
  rootFields: string[];
}

/** Tokens a subscribe document may have: parsing stops there (a bounded cost per message). */
const MAX_TOKENS = 2000;

/** The document of a subscribe message, checked; or the errors to answer with. */
export function checkDocument(
  schema: GraphQLSchema,
  query: string,
  operationName: string | undefined,
  limits: DocumentLimits,
  variables?: Record<string, unknown>,
): CheckedDocument | PayloadError[] {
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: MAX_TOKENS, noLocation: false });
  } catch (e) {
    const err = payloadErrorOf(e);
    return [{ ...err, extensions: { ...err.extensions, code: 'GRAPHQL_PARSE_FAILED' } }];
  }
  const operation = getOperationAST(document, operationName);
  if (operation && operation.operation !== 'subscription')
    return [payloadErrorOf(new SubscriptionsOnlyError())];
  const invalid = validate(schema, document, undefined, { maxErrors: 10 });
  if (invalid.length > 0)
    return invalid.map((e) => ({ ...payloadErrorOf(e), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }));
  if (!operation)
    return [
      {
        message: 'name the operation to run (operationName)',
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
      },
    ];
  const fragments = new Map(
    document.definitions.flatMap((d) =>
      d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [],
    ),
  );
  try {
    // The same walk as HTTP requests (graphql/limits.ts), with the socket's own bounds.
    const { maxFields, maxDepth } = limits;
    measureOperation(
      operation,
      fragments,
      schema,
      variables ?? null,
      {
        maxAliases: maxFields,
        maxFields,
        maxDepth,
        maxRows: Number.MAX_SAFE_INTEGER,
      },
      {},
    );
    checkNoNul(document, variables);
  } catch (e) {
    return [payloadErrorOf(e)];
  }
  const rootFields = operation.selectionSet.selections.flatMap((s) =>
    s.kind === Kind.FIELD ? [(s as FieldNode).name.value] : [],
  );
  return { document, operation, rootFields };
}

/** JSON with sorted object keys, so equal variables give equal keys. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** The shared-execution key: normalised document, operation, variables and visibility scope. */
export function executionKey(
  query: string,
  operationName: string | undefined,
  variables: Record<string, unknown> | undefined,
  scope: string,
): string {
  let normalised = query;
  try {
    normalised = stripIgnoredCharacters(query);
  } catch {
    // checked before; keep the raw text
  }
  return `${normalised}\u0000${operationName ?? ''}\u0000${stableJson(variables ?? {})}\u0000${scope}`;
}
