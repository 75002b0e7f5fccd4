/** Reflected input in messages is cut to this many characters (… marks the cut). */
export const REFLECTED_INPUT_MAX = 64;

/**
 * Every error tickmesh raises on purpose has a class, a stable code and an HTTP-ish status.
 * Codes are documented in docs/errors.md; a unit test fails when one is missing there.
 */
export class TmError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/**
 * Input shown in a message (and so in logs): quoted, everything but printable ASCII escaped as
 * `\u{…}`, at most `max` characters of it, and the full length when it was cut.
 */
export function shownInput(input: string, max = REFLECTED_INPUT_MAX): string {
  let shown = '';
  let taken = 0;
  for (const ch of input) {
    const piece =
      ch === '"' || ch === '\\'
        ? `\\${ch}`
        : ch >= ' ' && ch <= '~'
          ? ch
          : `\\u{${ch.codePointAt(0)!.toString(16)}}`;
    if (shown.length + piece.length > max) break;
    shown += piece;
    taken += ch.length;
  }
  return taken < input.length ? `"${shown}"... (${input.length} characters)` : `"${shown}"`;
}

export class InvalidSymbolError extends TmError {
  /** The input as the message shows it (bounded: the error may be logged). */
  readonly input: string;

  constructor(input: string, reason: string, options?: { cause?: unknown }) {
    const shown = shownInput(input);
    super('TM_ERR_INVALID_SYMBOL', 400, `invalid symbol or token ${shown}: ${reason}`, options);
    this.input = shown;
  }
}

export class ValidationError extends TmError {
  constructor(
    readonly kind: string,
    readonly issues: string,
    options?: { cause?: unknown },
  ) {
    super('TM_ERR_VALIDATION', 400, `invalid ${kind}: ${issues}`, options);
  }
}

export class ConfigError extends TmError {
  constructor(issues: string) {
    super('TM_ERR_CONFIG', 500, `invalid configuration: ${issues}`);
  }
}

export class UnknownSymbolError extends TmError {
  constructor(exchange: string, symbol: string) {
    super(
      'TM_ERR_UNKNOWN_SYMBOL',
      404,
      `unknown symbol ${shownInput(symbol)} on exchange ${shownInput(exchange)}`,
    );
  }
}

export class UnknownTimeframeError extends TmError {
  constructor(timeframe: string, allowed: readonly string[]) {
    super(
      'TM_ERR_UNKNOWN_TIMEFRAME',
      400,
      `unknown timeframe ${shownInput(timeframe)}; use one of ${allowed.join(', ')}`,
    );
  }
}

export class LimitExceededError extends TmError {
  constructor(what: string, max: number) {
    super('TM_ERR_LIMIT', 400, `${what} exceeds the maximum of ${max}`);
  }
}

export class BadArgumentError extends TmError {
  constructor(argument: string, reason: string) {
    super('TM_ERR_BAD_ARGUMENT', 400, `argument ${argument}: ${reason}`);
  }
}

export class NotLeaderError extends TmError {
  constructor(detail: string) {
    super('TM_ERR_NOT_LEADER', 409, `this supervisor lost the leader lease: ${detail}`);
  }
}

export class ActorFailedError extends TmError {
  constructor(actorId: string, restarts: number, options?: { cause?: unknown }) {
    super(
      'TM_ERR_ACTOR_FAILED',
      500,
      `actor ${actorId} exceeded its restart intensity after ${restarts} restarts`,
      options,
    );
  }
}

export class MailboxClosedError extends TmError {
  constructor(owner: string) {
    super('TM_ERR_MAILBOX_CLOSED', 500, `mailbox of ${owner} is closed`);
  }
}

/**
 * `tickmesh dev` could not start: what failed and how to fix it, in one line (the launcher
 * prints nothing else). Its subclass EmbeddedServerError is for its own nats-server/PostgreSQL.
 */
export class StartupError extends TmError {
  constructor(
    readonly step: string,
    readonly problem: string,
    readonly fix: string,
    options?: { cause?: unknown },
    code = 'TM_ERR_STARTUP',
  ) {
    super(code, 500, `${step}: ${problem}; ${fix}`, options);
  }
}

export class EmbeddedServerError extends StartupError {
  constructor(server: string, problem: string, fix: string, options?: { cause?: unknown }) {
    super(server, problem, fix, options, 'TM_ERR_EMBEDDED');
  }
}

/** A symbol actor saw its trade consumer skip deliveries; it crashes to replay from its snapshot. */
export class TradeDeliveryGapError extends TmError {
  constructor(previous: number, next: number) {
    super('TM_ERR_DELIVERY_GAP', 500, `trade delivery gap: consumer sequence ${previous} → ${next}`);
  }
}

/** A JetStream consumer an actor reads ended while the actor was not stopping. */
export class ConsumerEndedError extends TmError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('TM_ERR_CONSUMER_ENDED', 500, `${what} consumer ended unexpectedly`, options);
  }
}

/** A JetStream publish an actor must not lose failed for good (only while stopping). */
export class PublishFailedError extends TmError {
  constructor(what: string, options?: { cause?: unknown }) {
    const detail = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super('TM_ERR_PUBLISH_FAILED', 500, `${what} publish failed${detail}`, options);
  }
}

export class UnknownExchangeError extends TmError {
  constructor(exchange: string) {
    super('TM_ERR_UNKNOWN_EXCHANGE', 404, `unknown exchange ${shownInput(exchange)}`);
  }
}

/** The object named does not exist (an alert rule, an actor to restart). */
export class NotFoundError extends TmError {
  constructor(what: string) {
    super('TM_ERR_NOT_FOUND', 404, what);
  }
}

/** A subscriber's queue of closed bars passed its bound: it is cut off rather than grow memory. */
export class SlowSubscriberError extends TmError {
  constructor(max: number) {
    super(
      'TM_ERR_SLOW_SUBSCRIBER',
      429,
      `subscription cancelled: more than ${max} undelivered messages (client too slow)`,
    );
  }
}

export class IllegalTransitionError extends TmError {
  constructor(from: string, to: string) {
    super('TM_ERR_BAD_TRANSITION', 500, `illegal actor transition ${from} → ${to}`);
  }
}

export class DuplicateActorError extends TmError {
  constructor(id: string) {
    super('TM_ERR_DUPLICATE_ACTOR', 409, `actor ${id} is already registered in this supervisor`);
  }
}

/** An actor spec no behavior exists for (e.g. an exchange kind without an adapter). */
export class UnsupportedActorError extends TmError {
  constructor(id: string, kind: string) {
    super('TM_ERR_UNSUPPORTED_ACTOR', 500, `no behavior for actor ${id} (${kind})`);
  }
}

/** An alert could not be delivered on a channel; the dispatcher retries it. */
export class DeliveryError extends TmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TM_ERR_DELIVERY', 502, message, options);
  }
}

/** An outbound URL (alert webhook, Slack hook) the outbound policy refuses (core/outbound-policy.ts). */
export class OutboundRefusedError extends TmError {
  constructor(
    readonly reason: string,
    field?: string,
  ) {
    super('TM_ERR_OUTBOUND_REFUSED', 400, `${field ? `${field}: ` : ''}outbound address refused: ${reason}`);
  }
}

/** Another process answered a request with something this one cannot use. */
export class RemoteError extends TmError {
  constructor(who: string, detail: string, options?: { cause?: unknown }) {
    super('TM_ERR_REMOTE', 502, `${who} answered: ${detail}`, options);
  }
}

/** A state the code rules out was reached: a bug, reported with what was found. */
export class InvariantError extends TmError {
  constructor(detail: string) {
    super('TM_ERR_INVARIANT', 500, `internal invariant broken: ${detail}`);
  }
}

export class AlreadyStartedError extends TmError {
  constructor(what: string) {
    super('TM_ERR_ALREADY_STARTED', 500, `${what} was started twice`);
  }
}

/** A request without valid credentials (no token, a bad or expired one, a revoked key). */
export class UnauthenticatedError extends TmError {
  constructor(detail = 'sign in first: send Authorization: Bearer <access token or API key>') {
    super('TM_ERR_UNAUTHENTICATED', 401, detail);
  }
}

/** An authenticated caller whose role (or ownership) does not allow the operation. */
export class ForbiddenError extends TmError {
  constructor(detail: string) {
    super('TM_ERR_FORBIDDEN', 403, detail);
  }
}

/** Too many failed logins for a user or an address: refused until the lock-out passes. */
export class LoginLockedError extends TmError {
  constructor(retryAfterMs: number) {
    super(
      'TM_ERR_LOGIN_LOCKED',
      429,
      `too many failed logins: try again in ${Math.ceil(retryAfterMs / 1000)} s`,
    );
  }
}

/** A principal spent its request budget (graphql/rate-limits.ts): HTTP 429 with Retry-After. */
export class RateLimitedError extends TmError {
  constructor(
    readonly kind: string,
    readonly retryAfterMs: number,
  ) {
    super(
      'TM_ERR_RATE_LIMITED',
      429,
      `too many ${kind} requests: try again in ${Math.ceil(retryAfterMs / 1000)} s`,
    );
  }
}

/** A Host header the gateway does not answer to (against DNS rebinding): gateway.http.allowedHosts. */
export class HostNotAllowedError extends TmError {
  constructor(host: string | undefined) {
    super(
      'TM_ERR_BAD_HOST',
      421,
      `this server does not answer to Host ${shownInput(host ?? '')}: add it to TICKMESH_ALLOWED_HOSTS`,
    );
  }
}

/** A WebSocket upgrade from another site's page (an Origin that is neither this host nor allowed). */
export class OriginNotAllowedError extends TmError {
  constructor(reason: string) {
    super('TM_ERR_BAD_ORIGIN', 403, reason);
  }
}

/** A /graphql request a browser could send from another site without a CORS preflight. */
export class CsrfRefusedError extends TmError {
  constructor(detail: string) {
    super('TM_ERR_CSRF', 400, detail);
  }
}

/** A query or mutation sent over graphql-ws: the socket carries subscriptions only. */
export class SubscriptionsOnlyError extends TmError {
  constructor() {
    super(
      'TM_ERR_WS_OPERATION',
      400,
      'this socket carries subscriptions only: send queries and mutations with HTTP POST /graphql',
    );
  }
}
