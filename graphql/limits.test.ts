import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { loadConfig } from '../core/config.ts';
import { LimitExceededError } from '../core/errors.ts';
import { classify, clipMessage, LogThrottle } from './error-format.ts';
import { SCHEMA } from './gateway.ts';
import { checkDocumentSize, checkNoNul, listLimits, measureDocument } from './limits.ts';

const cfg = loadConfig({});
const schema = buildSchema(SCHEMA);
const limits = cfg.gateway.limits;
const defaults = listLimits(cfg);

const measure = (query: string, variables: Record<string, unknown> | null = null, over = {}) =>
  measureDocument(parse(query), schema, variables, { ...limits, ...over }, defaults);

const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LimitExceededError);
    return (e as Error).message;
  }
  throw new Error('no limit was exceeded');
};

const candles = (n: number, limit?: number) =>
  `{ ${Array.from({ length: n }, (_, i) => `c${i}: candles(exchange: "sim", symbol: "X", timeframe: "1m"${limit ? `, limit: ${limit}` : ''}) { close }`).join(' ')} }`;

describe('the cost of a GraphQL document', () => {
  it('counts root fields and aliases, and refuses more than the maximum', () => {
    expect(measure('{ exchanges { id n: name } timeframes }')[0]).toMatchObject({ aliases: 3, depth: 1 });
    expect(measure(candles(4, 10))[0]).toMatchObject({ aliases: 4, rows: 40 });
    expect(refusal(() => measure(candles(21, 1)))).toMatch(/root fields and aliases .* maximum of 20/);
    // The attack from the issue: 2,000 aliases of candles(limit: 5000).
    expect(refusal(() => measure(candles(2000, 5000)))).toMatch(/maximum of 20/);
  });

  it('adds up limit arguments over list fields, with their defaults when absent', () => {
    expect(measure(candles(3))[0]!.rows).toBe(3 * cfg.gateway.defaultCandles);
    expect(measure('{ alertEvents { id } auditLog(limit: 7) { id } }')[0]!.rows).toBe(107);
    expect(refusal(() => measure(candles(5, 5000)))).toMatch(/rows .* maximum of 20000/);
    // One limit above the field's maximum is the field's own error (it counts as its maximum).
    expect(measure(candles(1, 100_000))[0]!.rows).toBe(cfg.gateway.maxCandles);
    expect(refusal(() => measure(candles(5, 100_000)))).toMatch(/rows/);
    // A variable counts its value; before the variables are known, its declared default.
    const q =
      'query($n: Int = 3) { candles(exchange: "sim", symbol: "X", timeframe: "1m", limit: $n) { close } }';
    expect(measure(q)[0]!.rows).toBe(3);
    expect(measure(q, { n: 4000 })[0]!.rows).toBe(4000);
    expect(refusal(() => measure(q, { n: 4000 }, { maxRows: 3999 }))).toMatch(/maximum of 3999/);
  });

  it('expands fragments, so a fragment-spread bomb stops at the field budget', () => {
    const layers = Array.from(
      { length: 12 },
      (_, i) => `fragment F${i} on Exchange { ${Array.from({ length: 4 }, () => `...F${i + 1}`).join(' ')} }`,
    );
    const bomb = `{ exchanges { ...F0 } } ${layers.join(' ')} fragment F12 on Exchange { id }`;
    expect(refusal(() => measure(bomb))).toMatch(/field selections .* maximum of 1000/);
    // A fragment's aliases count where it is spread.
    const spread = `{ ...A ...A } fragment A on Query { ${Array.from({ length: 11 }, (_, i) => `t${i}: timeframes`).join(' ')} }`;
    expect(refusal(() => measure(spread))).toMatch(/aliases/);
    // Cycles are left to validation.
    expect(measure('{ ...A } fragment A on Query { ...A timeframes }')[0]!.aliases).toBe(1);
  });

  it('refuses nesting deeper than the maximum depth', () => {
    const deep = '{ candles(exchange: "s", symbol: "X", timeframe: "1m") { indicators { macd { macd } } } }';
    expect(measure(deep)[0]!.depth).toBe(3);
    expect(refusal(() => measure(deep, null, { maxDepth: 2 }))).toMatch(/query depth .* maximum of 2/);
  });

  it('counts mutation root fields and logins', () => {
    const m =
      'mutation { a: login(username: "u", password: "p") { accessToken } b: logout(refreshToken: "x") }';
    expect(measure(m)[0]).toMatchObject({ kind: 'mutation', mutations: 1, logins: 1 });
  });

  it('gives every list field with a limit argument a default', () => {
    const withLimit = Object.values(schema.getQueryType()!.getFields())
      .filter((f) => f.args.some((a) => a.name === 'limit'))
      .map((f) => `Query.${f.name}`);
    expect(withLimit.filter((k) => defaults[k] === undefined)).toEqual([]);
  });

  it('bounds the document size in bytes', () => {
    expect(() => checkDocumentSize('{ timeframes }', limits)).not.toThrow();
    expect(refusal(() => checkDocumentSize('x'.repeat(limits.maxDocumentBytes + 1), limits))).toMatch(
      /document size/,
    );
    // Multi-byte characters count as their UTF-8 bytes.
    expect(refusal(() => checkDocumentSize('€'.repeat(limits.maxDocumentBytes / 2), limits))).toMatch(/size/);
  });
});

describe('NUL characters', () => {
  it('are refused in literal arguments and variables, with the argument named', () => {
    const nul = (q: string, v?: Record<string, unknown>) => {
      try {
        checkNoNul(parse(q), v);
        return null;
      } catch (e) {
        return [(e as { code: string }).code, (e as Error).message];
      }
    };
    expect(nul('{ symbols(exchange: "sim") { symbol } }')).toBeNull();
    expect(nul('{ symbols(exchange: "s\\u0000m") { symbol } }')).toEqual([
      'TM_ERR_BAD_ARGUMENT',
      'argument exchange: contains a NUL character',
    ]);
    expect(nul('mutation { createAlertRule(input: { note: "a\\u0000" }) { id } }')?.[0]).toBe(
      'TM_ERR_BAD_ARGUMENT',
    );
    expect(nul('query($e: String) { symbols(exchange: $e) { symbol } }', { e: 'a\u0000' })?.[1]).toBe(
      'argument $e: contains a NUL character',
    );
    expect(nul('query($i: AlertRuleInput!) { x }', { i: { note: ['ok', 'b\u0000'] } })?.[0]).toBe(
      'TM_ERR_BAD_ARGUMENT',
    );
  });
});

describe('error messages and logs', () => {
  it('cut echoed input to 64 characters per quoted part', () => {
    const long = 'a'.repeat(5000);
    const clipped = clipMessage(`unknown symbol "${long}" on exchange "sim"`);
    expect(clipped).toBe(`unknown symbol "${'a'.repeat(64)}…" on exchange "sim"`);
    expect(clipMessage(`x ${long}`).length).toBeLessThanOrEqual(301);
  });

  it('log client errors at most N per second, then report how many were held back', () => {
    const clock = new FakeClock(10_000);
    const throttle = new LogThrottle(2, clock);
    expect([throttle.take(), throttle.take(), throttle.take(), throttle.take()].map((t) => t.log)).toEqual([
      true,
      true,
      false,
      false,
    ]);
    clock.advance(1000);
    expect(throttle.take()).toEqual({ log: true, suppressed: 2 });
    expect(throttle.take()).toEqual({ log: true, suppressed: 0 });
  });

  it('turn unexpected errors into "internal error" and driver timeouts into TM_ERR_LIMIT', async () => {
    const { GraphQLError } = await import('graphql');
    const bug = new GraphQLError('relation "x" does not exist', {
      path: ['candles'],
      originalError: new Error('relation "x" does not exist'),
    });
    expect(classify(bug, 10_000)[0]).toMatchObject({
      message: 'internal error',
      code: 'INTERNAL_SERVER_ERROR',
      status: 500,
    });
    const csrf = Object.assign(new Error('This operation has been blocked as a potential CSRF.'), {
      code: 'MER_ERR_GQL_CSRF_PREVENTION',
      statusCode: 400,
    });
    expect(classify(new GraphQLError(csrf.message, { originalError: csrf }), 500)[0]).toMatchObject({
      code: 'GRAPHQL_PARSE_FAILED',
      status: 400,
    });
    const timeout = Object.assign(new Error('canceling statement due to statement timeout'), {
      code: '57014',
    });
    expect(
      classify(new GraphQLError(timeout.message, { path: ['candles'], originalError: timeout }), 500)[0],
    ).toMatchObject({
      code: 'TM_ERR_LIMIT',
      message: 'request time (ms) exceeds the maximum of 500',
    });
  });
});
