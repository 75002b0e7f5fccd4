/**
 * What one GraphQL request may cost, checked before any resolver (and so any SQL) runs
 * (config `gateway.limits`, over any → TM_ERR_LIMIT):
 * - the query text's size, before it is parsed, and its token count while parsing;
 * - per operation, fragments expanded: root fields plus aliases, field selections, depth, and the
 *   row budget: Σ of `limit` over the list fields that take one (their default when absent).
 *   The structure is measured before validation (so a wide document never reaches graphql-js'
 *   quadratic checks), and again with the variables before execution;
 * - a time limit per request: resolvers answer TM_ERR_LIMIT when it passes, and the gateway's
 *   database pool has the same statement_timeout, so the server cancels their SQL.
 * NUL characters in any string argument (literal or variable) are refused as TM_ERR_BAD_ARGUMENT.
 */

import type { FastifyInstance } from 'fastify';
import {
  type ArgumentNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLObjectType,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
  visit,
} from 'graphql';
import type { Config } from '../core/config.ts';
import {
  BadArgumentError,
  LimitExceededError,
  RateLimitedError,
  UnauthenticatedError,
} from '../core/errors.ts';
import { operationsOf, refusal } from './auth.ts';
import type { AuthContext } from './callers.ts';
import { type BudgetKind, principalOf, type RequestBudgets } from './rate-limits.ts';

export type LimitsConfig = Config['gateway']['limits'];
/** What measuring an operation needs of the limits (graphql-ws documents have their own). */
export type OperationLimits = Pick<LimitsConfig, 'maxAliases' | 'maxFields' | 'maxDepth' | 'maxRows'>;

/** A list field's `limit`: its value when the request names none, and the most it accepts. */
export interface ListLimit {
  default: number;
  max: number;
}

/** The list fields that take a `limit`, by `Type.field`. */
export function listLimits(cfg: Config): Record<string, ListLimit> {
  const candles = { default: cfg.gateway.defaultCandles, max: cfg.gateway.maxCandles };
  const events = { default: 100, max: 1000 };
  return {
    'Query.candles': candles,
    'Query.features': candles,
    'Query.alertEvents': events,
    'Query.auditLog': events,
  };
}

/** What an operation costs; `mutations` (other than login) and `logins` count root fields, aliases too. */
export interface Cost {
  kind: OperationDefinitionNode['operation'];
  aliases: number;
  selections: number;
  depth: number;
  rows: number;
  mutations: number;
  logins: number;
}

type Variables = Record<string, unknown> | null | undefined;

/**
 * Measures one operation, throwing LimitExceededError as soon as a count passes its limit (so
 * the walk itself is bounded, however the fragments multiply). `variables` null: a variable
 * `limit` counts its declared default, else the field's default.
 */
export function measureOperation(
  op: OperationDefinitionNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  schema: GraphQLSchema,
  variables: Variables,
  limits: OperationLimits,
  defaults: Readonly<Record<string, ListLimit>>,
): Cost {
  const cost: Cost = {
    kind: op.operation,
    aliases: 0,
    selections: 0,
    depth: 0,
    rows: 0,
    mutations: 0,
    logins: 0,
  };
  const declared = new Map(
    (op.variableDefinitions ?? []).map((d) => [d.variable.name.value, d.defaultValue] as const),
  );
  const limitOf = (arg: ArgumentNode | undefined, fallback: number): number => {
    let v: unknown = fallback;
    const node = arg?.value;
    if (node?.kind === Kind.INT) v = Number(node.value);
    else if (node?.kind === Kind.VARIABLE) {
      const name = node.name.value;
      const given = variables?.[name];
      const def = declared.get(name);
      if (typeof given === 'number') v = given;
      else if (given === undefined && def?.kind === Kind.INT) v = Number(def.value);
    }
    return typeof v === 'number' && Number.isFinite(v) ? Math.max(0, v) : fallback;
  };

  const walk = (
    set: SelectionSetNode,
    parent: GraphQLObjectType | null,
    depth: number,
    inFragments: ReadonlySet<string>,
    introspection: boolean,
  ): void => {
    for (const s of set.selections) {
      if (++cost.selections > limits.maxFields)
        throw new LimitExceededError('field selections (fragments expanded)', limits.maxFields);
      if (s.kind === Kind.FRAGMENT_SPREAD) {
        const name = s.name.value;
        const f = fragments.get(name);
        // A cycle or an unknown fragment: validation refuses the document.
        if (!f || inFragments.has(name)) continue;
        walk(
          f.selectionSet,
          typeNamed(schema, f.typeCondition.name.value) ?? parent,
          depth,
          new Set([...inFragments, name]),
          introspection,
        );
        continue;
      }
      if (s.kind === Kind.INLINE_FRAGMENT) {
        const type = s.typeCondition ? typeNamed(schema, s.typeCondition.name.value) : parent;
        walk(s.selectionSet, type ?? parent, depth, inFragments, introspection);
        continue;
      }
      const name = s.name.value;
      if (depth === 0 || s.alias) {
        if (++cost.aliases > limits.maxAliases)
          throw new LimitExceededError('root fields and aliases of an operation', limits.maxAliases);
      }
      // Logins have their own budget, per client address.
      if (depth === 0 && op.operation === 'mutation') {
        if (name === 'login') cost.logins++;
        else cost.mutations++;
      }
      // Introspection (when enabled) nests deeper than data; it is bounded by the field count.
      const meta = introspection || name.startsWith('__');
      if (!meta && depth > cost.depth) {
        cost.depth = depth;
        if (depth > limits.maxDepth) throw new LimitExceededError('query depth', limits.maxDepth);
      }
      const field = parent?.getFields()[name];
      const key = `${parent?.name}.${name}`;
      if (field?.args.some((a) => a.name === 'limit')) {
        const arg = s.arguments?.find((a) => a.name.value === 'limit');
        const list = defaults[key] ?? { default: limits.maxRows, max: limits.maxRows };
        // Above its maximum the field refuses itself (with that maximum in the message).
        cost.rows += Math.min(limitOf(arg, list.default), list.max);
        if (cost.rows > limits.maxRows)
          throw new LimitExceededError('rows asked for (Σ of limit over list fields)', limits.maxRows);
      }
      if (s.selectionSet) walk(s.selectionSet, objectType(field?.type), depth + 1, inFragments, meta);
    }
  };
  const root = schema.getRootType(op.operation) ?? null;
  walk(op.selectionSet, root, 0, new Set(), false);
  return cost;
}

/**
 * The object type a type names, unwrapped from lists and non-nulls. By shape, not instanceof:
 * mercurius' schema comes from graphql's CommonJS build, this module from its ES module build.
 */
function objectType(type: unknown): GraphQLObjectType | null {
  let t = type as { ofType?: unknown; getFields?: unknown; getInterfaces?: unknown } | null | undefined;
  while (t?.ofType) t = t.ofType as typeof t;
  return t && typeof t.getFields === 'function' && typeof t.getInterfaces === 'function'
    ? (t as unknown as GraphQLObjectType)
    : null;
}

function typeNamed(schema: GraphQLSchema, name: string): GraphQLObjectType | null {
  return objectType(schema.getType(name));
}

/** Every operation of the document measured (each must fit, whichever runs). */
export function measureDocument(
  document: DocumentNode,
  schema: GraphQLSchema,
  variables: Variables,
  limits: LimitsConfig,
  defaults: Readonly<Record<string, ListLimit>>,
): Cost[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions)
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  return document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((op) => measureOperation(op, fragments, schema, variables, limits, defaults));
}

/** The query text's size in bytes, checked before parsing. */
export function checkDocumentSize(source: string, limits: LimitsConfig): void {
  // A JS string's UTF-8 size is at most 3 bytes per UTF-16 unit: count only when it may matter.
  if (source.length * 3 <= limits.maxDocumentBytes) return;
  if (Buffer.byteLength(source, 'utf8') > limits.maxDocumentBytes)
    throw new LimitExceededError('query document size (bytes)', limits.maxDocumentBytes);
}

const hasNul = (text: string) => text.includes('\u0000');

function valueHasNul(node: ValueNode): boolean {
  if (node.kind === Kind.STRING) return hasNul(node.value);
  if (node.kind === Kind.LIST) return node.values.some(valueHasNul);
  if (node.kind === Kind.OBJECT) return node.fields.some((f) => hasNul(f.name.value) || valueHasNul(f.value));
  return false;
}

function jsonHasNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return hasNul(value);
  if (depth > 32 || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((v) => jsonHasNul(v, depth + 1));
  return Object.entries(value).some(([k, v]) => hasNul(k) || jsonHasNul(v, depth + 1));
}

/** Refuses a NUL character in any string argument: the database cannot store one. */
export function checkNoNul(document: DocumentNode, variables: Variables): void {
  for (const [name, value] of Object.entries(variables ?? {}))
    if (jsonHasNul(value)) throw new BadArgumentError(`$${name.slice(0, 64)}`, 'contains a NUL character');
  visit(document, {
    Argument(node) {
      if (valueHasNul(node.value)) throw new BadArgumentError(node.name.value, 'contains a NUL character');
    },
  });
}

const deadlines = new WeakMap<object, { at: number; limitMs: number }>();

/** Starts the request's time limit on its context (the object every resolver receives). */
export function startDeadline(context: object, limitMs: number): void {
  deadlines.set(context, { at: Date.now() + limitMs, limitMs });
}

/** `work`, or TM_ERR_LIMIT once the request's time limit has passed (contexts without one: `work`). */
export async function withinDeadline<T>(context: object, work: Promise<T>): Promise<T> {
  const deadline = deadlines.get(context);
  if (!deadline) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LimitExceededError('request time (ms)', deadline.limitMs)),
      Math.max(0, deadline.at - Date.now()),
    );
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export interface LimitDeps {
  limits: LimitsConfig;
  defaults: Readonly<Record<string, ListLimit>>;
  budgets: RequestBudgets;
}

/**
 * The hooks: every request is charged to its principal's `query` budget before it is parsed;
 * the size, then the structure (before validation), then NULs, the costs with variables, the
 * mutation and login budgets and the time limit (before execution).
 */
export function installLimits(app: FastifyInstance, { limits, defaults, budgets }: LimitDeps): void {
  const charge = async (principal: string, kind: BudgetKind, points: number) => {
    const wait = await budgets.consume(principal, kind, points);
    if (wait !== null) throw new RateLimitedError(kind, wait);
  };
  app.graphql.addHook('preParsing', async (_schema, source, context) => {
    const ctx = context as unknown as AuthContext;
    await charge(principalOf(ctx), 'query', 1);
    // A caller without credentials may only sign in or refresh, whose documents are small:
    // anything bigger is refused as unauthenticated, like the rest of what they may not run.
    if (!ctx.caller && Buffer.byteLength(source) > limits.maxDocumentBytes) throw new UnauthenticatedError();
    checkDocumentSize(source, limits);
  });
  app.graphql.addHook('preValidation', async (schema, document, context) => {
    // Who asks comes before what it costs: a stranger learns nothing of the limits.
    const ctx = context as unknown as AuthContext;
    const anonymous = ctx.caller ? null : refusal(null, operationsOf(document));
    if (anonymous) throw anonymous;
    measureDocument(document, schema, null, limits, defaults);
  });
  app.graphql.addHook('preExecution', async (schema, document, context, variables) => {
    const ctx = context as unknown as AuthContext;
    checkNoNul(document, variables);
    const costs = measureDocument(document, schema, variables, limits, defaults);
    const total = (k: 'mutations' | 'logins') => costs.reduce((n, c) => n + c[k], 0);
    await charge(principalOf(ctx), 'mutation', total('mutations'));
    await charge(principalOf({ caller: null, address: ctx.address }), 'login', total('logins'));
    startDeadline(context, limits.requestTimeoutMs);
  });
}
