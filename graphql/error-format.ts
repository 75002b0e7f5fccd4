/**
 * How GraphQL errors leave the gateway (mercurius `errorFormatter`):
 * - our errors (TmError, or resolver errors carrying a TM_ERR_ code) keep their code and status;
 * - a query that does not parse → GRAPHQL_PARSE_FAILED, one that does not validate (unknown
 *   field, bad variable, introspection while it is off) → GRAPHQL_VALIDATION_FAILED, both 400;
 * - anything else is a bug or an outage: the client gets "internal error", INTERNAL_SERVER_ERROR
 *   and the request id; the details go to the log only.
 * Input echoed in messages is cut (quoted parts to 64 characters, a message to 300). Client
 * errors are logged at warn, at most a few lines per second per process (the rest counted and
 * reported with the next line); internal errors at error, always.
 */
import type { FastifyReply } from 'fastify';
import type { GraphQLError } from 'graphql';
import { type Clock, systemClock } from '../core/clock.ts';
import { LimitExceededError, RateLimitedError, REFLECTED_INPUT_MAX, TmError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

export const GRAPHQL_PARSE_FAILED = 'GRAPHQL_PARSE_FAILED';
export const GRAPHQL_VALIDATION_FAILED = 'GRAPHQL_VALIDATION_FAILED';
export const INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR';

const MESSAGE_MAX = 300;

/** A message with every long quoted part, and the whole, cut short. */
export function clipMessage(message: string): string {
  const quotedCut = message.replace(
    new RegExp(`"((?:[^"\\\\]|\\\\.){${REFLECTED_INPUT_MAX}})(?:[^"\\\\]|\\\\.)+"`, 'g'),
    '"$1…"',
  );
  return quotedCut.length > MESSAGE_MAX ? `${quotedCut.slice(0, MESSAGE_MAX)}…` : quotedCut;
}

/** At most `perSecond` lines per second; `suppressed` is how many were held back since the last one. */
export class LogThrottle {
  private second = -1;
  private lines = 0;
  private held = 0;

  constructor(
    private readonly perSecond: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Whether to log now, and how many lines were held back before this one. */
  take(): { log: boolean; suppressed: number } {
    const second = Math.floor(this.clock.now() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.lines = 0;
    }
    if (this.lines >= this.perSecond) {
      this.held++;
      return { log: false, suppressed: 0 };
    }
    this.lines++;
    const suppressed = this.held;
    this.held = 0;
    return { log: true, suppressed };
  }
}

interface Outgoing {
  message: string;
  code: string;
  status: number;
  internal: boolean;
  error: GraphQLError | Error;
}

/** By name, not instanceof: mercurius' errors come from graphql's CommonJS build, not this one's. */
const isGraphqlError = (e: unknown): e is GraphQLError => e instanceof Error && e.name === 'GraphQLError';

/** A refusal of fastify or mercurius itself (a body that is not JSON, a CSRF check, …). */
const isFastifyError = (e: unknown): e is Error & { code: string; statusCode: number } => {
  const { code, statusCode } = (e ?? {}) as { code?: unknown; statusCode?: unknown };
  return typeof code === 'string' && /^(FST_|MER_ERR_)/.test(code) && typeof statusCode === 'number';
};

/** What one error becomes (a mercurius validation error is several: one per inner error). */
export function classify(error: GraphQLError, requestTimeoutMs: number): Outgoing[] {
  const orig = error.originalError as (Error & Record<string, unknown>) | undefined;
  const client = (
    message: string,
    code: string,
    status: number,
    e: GraphQLError | Error = error,
  ): Outgoing => ({
    message: clipMessage(message),
    code,
    status,
    internal: false,
    error: e,
  });
  if (orig && Array.isArray(orig.errors)) {
    const status = typeof orig.statusCode === 'number' ? orig.statusCode : 400;
    return (orig.errors as Error[]).map((e) => {
      if (isGraphqlError(e) && e.message.startsWith('Syntax Error')) {
        const tokens = /more that (\d+) tokens/.exec(e.message);
        if (tokens) {
          const limit = new LimitExceededError('query document tokens', Number(tokens[1]));
          return client(limit.message, limit.code, limit.status, e);
        }
        return client(e.message, GRAPHQL_PARSE_FAILED, status, e);
      }
      return client(e.message, GRAPHQL_VALIDATION_FAILED, status, e);
    });
  }
  if (orig instanceof TmError) return [client(orig.message, orig.code, orig.status)];
  const ext = (orig?.extensions ?? error.extensions) as { code?: unknown } | undefined;
  if (typeof ext?.code === 'string' && ext.code.startsWith('TM_ERR_'))
    return [client(error.message, ext.code, typeof orig?.statusCode === 'number' ? orig.statusCode : 400)];
  if ((orig as { code?: unknown } | undefined)?.code === '57014') {
    const limit = new LimitExceededError('request time (ms)', requestTimeoutMs);
    return [client(limit.message, limit.code, limit.status)];
  }
  if (isFastifyError(orig) && orig.statusCode < 500) {
    if (orig.statusCode === 413) return [client('request body too large', 'TM_ERR_LIMIT', 413)];
    return [client(orig.message, GRAPHQL_PARSE_FAILED, orig.statusCode)];
  }
  // graphql-js' own request errors (e.g. a missing variable) have no path; field errors do.
  if (!orig && !error.path) return [client(error.message, GRAPHQL_VALIDATION_FAILED, 400)];
  return [{ message: 'internal error', code: INTERNAL_SERVER_ERROR, status: 500, internal: true, error }];
}

function logDetail(e: GraphQLError | Error): Record<string, unknown> {
  const cause = isGraphqlError(e) && e.originalError ? e.originalError : e;
  const [, ...frames] = (cause.stack ?? '').split('\n');
  return {
    type: cause.name,
    message: clipMessage(cause.message),
    code: (cause as { code?: unknown }).code,
    ...(isGraphqlError(e) && e.path ? { path: e.path.join('.') } : {}),
    stack: frames.slice(0, 12).join('\n'),
  };
}

interface Execution {
  data?: unknown;
  errors: readonly GraphQLError[];
}

interface FormatterContext {
  reply?: FastifyReply;
}

/** The mercurius `errorFormatter` of the gateway. */
export function errorFormatter(log: Logger, throttle: LogThrottle, requestTimeoutMs: number) {
  return (execution: Execution, context: FormatterContext) => {
    const reply = context?.reply;
    const requestId = reply?.request.id;
    const out = execution.errors.flatMap((e) => classify(e, requestTimeoutMs));
    for (const o of out) {
      if (o.internal)
        log.error({ requestId, err: logDetail(o.error) }, 'internal error in a GraphQL request');
      else {
        const { log: now, suppressed } = throttle.take();
        if (now)
          log.warn(
            { requestId, code: o.code, error: o.message, ...(suppressed ? { suppressed } : {}) },
            'GraphQL client error',
          );
      }
    }
    const limited = execution.errors
      .map((e) => e.originalError)
      .find((e): e is RateLimitedError => e instanceof RateLimitedError);
    if (limited && reply)
      reply.header('retry-after', String(Math.max(1, Math.ceil(limited.retryAfterMs / 1000))));
    const errors = out.map((o) => {
      const e = isGraphqlError(o.error) ? o.error : null;
      return {
        message: o.message,
        ...(e?.locations ? { locations: e.locations } : {}),
        ...(e?.path ? { path: e.path } : {}),
        extensions: { code: o.code, ...(o.internal && requestId ? { requestId } : {}) },
      };
    });
    const statusCode = execution.data ? 200 : (out[0]?.status ?? 500);
    return { statusCode, response: { data: execution.data ?? null, errors } };
  };
}
