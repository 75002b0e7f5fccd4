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

export class InvalidSymbolError extends TmError {
  constructor(
    readonly input: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      'TM_ERR_INVALID_SYMBOL',
      400,
      `invalid symbol or token ${JSON.stringify(input)}: ${reason}`,
      options,
    );
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
      `unknown symbol ${JSON.stringify(symbol)} on exchange ${JSON.stringify(exchange)}`,
    );
  }
}

export class UnknownTimeframeError extends TmError {
  constructor(timeframe: string, allowed: readonly string[]) {
    super(
      'TM_ERR_UNKNOWN_TIMEFRAME',
      400,
      `unknown timeframe ${JSON.stringify(timeframe)}; use one of ${allowed.join(', ')}`,
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

export class EmbeddedServerError extends TmError {
  constructor(what: string, detail: string, options?: { cause?: unknown }) {
    super('TM_ERR_EMBEDDED', 500, `${what}: ${detail}`, options);
  }
}

export class AlreadyStartedError extends TmError {
  constructor(what: string) {
    super('TM_ERR_ALREADY_STARTED', 500, `${what} was started twice`);
  }
}
