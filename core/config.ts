/**
 * Configuration: named defaults ← optional JSON file (TICKMESH_CONFIG) ← environment.
 * Validated once against one strict schema (unknown keys are errors), then frozen.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { commaList, httpConfigSchema } from './http-config.ts';
import { NATS_PRINCIPALS, type NatsPrincipal } from './nats-permissions.ts';
import { webhookPolicySchema } from './outbound-policy.ts';
import { symbolSchema } from './protocol/symbols.ts';
import { qualityConfigSchema } from './quality-config.ts';

const ms = z.number().int().positive();

/** Symbol quotas (each active symbol costs an actor, a durable consumer and a KV snapshot). */
export const DEFAULT_MAX_ACTIVE_SYMBOLS = 200;
export const DEFAULT_MAX_SYMBOL_MUTATIONS = 10;

const restartSchema = z
  .object({
    intensity: z.number().int().min(0).default(5),
    periodMs: ms.default(60_000),
    backoffMs: ms.default(250),
    maxBackoffMs: ms.default(10_000),
  })
  .strict();

/** A budget of `points` per `durationSec` seconds (rate-limiter-flexible's terms). */
function budgetSchema(points: number, durationSec: number) {
  return z
    .object({
      points: z.number().int().min(1).default(points),
      durationSec: z.number().int().min(1).default(durationSec),
    })
    .strict()
    .prefault({});
}

export const configSchema = z
  .object({
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    nats: z
      .object({
        /** Unset in dev: the launcher starts a nats-server child. */
        url: z.string().optional(),
        /**
         * Passwords of the NATS users this process connects as (one per principal, the user
         * name is the principal); a principal without one connects without credentials.
         */
        passwords: z
          .object(
            Object.fromEntries(NATS_PRINCIPALS.map((p) => [p, z.string().min(1).optional()])) as {
              [K in NatsPrincipal]: z.ZodOptional<z.ZodString>;
            },
          )
          .strict()
          .default({}),
      })
      .strict()
      .default({ passwords: {} }),
    database: z
      .object({
        /** Unset in dev: the launcher starts an embedded PostgreSQL. */
        url: z.string().optional(),
        poolMax: z.number().int().min(1).max(100).default(10),
      })
      .strict()
      .default({ poolMax: 10 }),
    gateway: z
      .object({
        host: z.string().default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(4000),
        maxCandles: z.number().int().min(1).default(5000),
        defaultCandles: z.number().int().min(1).default(500),
        /** Closed bars buffered per subscriber before it is cut off as too slow. */
        subscriberQueue: z.number().int().min(1).default(1000),
        uiDir: z.string().optional(),
        /** Host allow-list and browser origins (core/http-config.ts). */
        http: httpConfigSchema.prefault({}),
        // Sub-objects of the gateway's limits and policies go below, each `.strict().prefault({})`.
        /** What one GraphQL request may ask for (graphql/limits.ts); over any → TM_ERR_LIMIT. */
        limits: z
          .object({
            /** Query text size in bytes, checked before parsing. */
            maxDocumentBytes: z
              .number()
              .int()
              .min(256)
              .default(32 * 1024),
            /** Lexical tokens of the query text (graphql-js parse option). */
            maxTokens: z.number().int().min(100).default(5000),
            /** Root fields plus aliased fields of one operation. */
            maxAliases: z.number().int().min(1).default(20),
            /** Field selections of one operation, fragments expanded. */
            maxFields: z.number().int().min(1).default(1000),
            /** Field nesting below the root fields. */
            maxDepth: z.number().int().min(1).default(8),
            /** Σ of `limit` over list fields (their default limit when absent). */
            maxRows: z.number().int().min(1).default(20_000),
            /** A request running longer answers TM_ERR_LIMIT; its SQL is cancelled (statement_timeout). */
            requestTimeoutMs: ms.default(10_000),
            /** Schema introspection (__schema, __type); `npm start` turns it on. */
            introspection: z.boolean().default(false),
            /** Client-error (4xx) log lines per second per process; the rest are counted. */
            clientErrorLogsPerSecond: z.number().int().min(0).default(10),
          })
          .strict()
          .prefault({}),
        /**
         * Request budgets per principal (user, API key, else client address), shared by every
         * gateway replica (graphql/rate-limits.ts); over one → HTTP 429 TM_ERR_RATE_LIMITED.
         */
        rateLimits: z
          .object({
            enabled: z.boolean().default(true),
            /** Every GraphQL request over HTTP. */
            query: budgetSchema(600, 60),
            /** Each mutation root field (also charged to `query` as a request). */
            mutation: budgetSchema(60, 60),
            /** Each login attempt, per client address. */
            login: budgetSchema(10, 60),
            /** Each subscription started (for the graphql-ws server). */
            subscribe: budgetSchema(120, 60),
          })
          .strict()
          .prefault({}),
        /** graphql-ws (graphql/ws-server.ts): protocol limits, fan-out and slow-client policy. */
        ws: z
          .object({
            /** Execute and serialise each (document, variables, scope) once per event for all its subscribers. */
            sharedExecution: z.boolean().default(true),
            /** A socket without connection_init after this long is closed with 4408. */
            initTimeoutMs: z.number().int().min(10).default(5000),
            maxSubscriptionsPerSocket: z.number().int().min(1).default(100),
            /** Open sockets per user or API key. */
            maxSocketsPerPrincipal: z.number().int().min(1).default(50),
            maxConnections: z.number().int().min(1).default(20_000),
            /** Largest client message (bytes); larger ones close the socket (1009). */
            maxMessageBytes: z
              .number()
              .int()
              .min(1024)
              .default(64 * 1024),
            /** Fields (incl. aliases) in one subscription document, and its depth. */
            maxFields: z.number().int().min(1).default(200),
            maxDepth: z.number().int().min(1).default(8),
            /** Unsent bytes per socket (kernel-refused + queued) above which the grace period runs. */
            maxBufferedBytes: z
              .number()
              .int()
              .min(1024)
              .default(1024 * 1024),
            /** A socket above maxBufferedBytes for this long is closed as too slow. */
            slowGraceMs: z.number().int().min(10).default(5000),
            /** Closed bars/alerts waiting per topic at NATS ingress before the oldest are dropped. */
            ingressBacklog: z.number().int().min(1).default(10_000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    metricsPort: z.number().int().min(0).max(65535).default(9464),
    /** YAML/JSON file of exchanges and their adapter options (core/exchanges-config.ts). */
    exchangesFile: z.string().optional(),
    worker: z
      .object({
        id: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .optional(),
      })
      .strict()
      .default({}),
    sim: z
      .object({
        enabled: z.boolean().default(true),
        /** Trades per second per simulated symbol. */
        rate: z.number().positive().max(1_000_000).default(20),
        seed: z.number().int().default(42),
        /** Maximum trades per published message. */
        batchMax: z.number().int().min(1).max(5000).default(200),
        symbols: z.array(symbolSchema).default(['BTC/USDT', 'ETH/USDT', 'SOL/USDT', 'AAPL', 'MSFT']),
      })
      .strict()
      .default({
        enabled: true,
        rate: 20,
        seed: 42,
        batchMax: 200,
        symbols: ['BTC/USDT', 'ETH/USDT', 'SOL/USDT', 'AAPL', 'MSFT'],
      }),
    bars: z
      .object({
        /** Late-trade grace after a bucket's end before the bar closes. */
        graceMs: z.number().int().min(0).default(1000),
        /** Minimum interval between forming-bar publications per timeframe. */
        formingThrottleMs: z.number().int().min(0).default(100),
        /** How often a symbol actor snapshots its state (resume point). */
        snapshotIntervalMs: ms.default(1000),
        /** Closed 1m bars kept in memory for late-trade revisions. */
        revisionWindow: z.number().int().min(1).max(1440).default(10),
      })
      .strict()
      .default({ graceMs: 1000, formingThrottleMs: 100, snapshotIntervalMs: 1000, revisionWindow: 10 }),
    streams: z
      .object({
        tradesMaxAgeMs: ms.default(7 * 24 * 3600_000),
        barsMaxAgeMs: ms.default(30 * 24 * 3600_000),
        eventsMaxAgeMs: ms.default(7 * 24 * 3600_000),
        replicas: z.number().int().min(1).max(5).default(1),
      })
      .strict()
      .default({
        tradesMaxAgeMs: 7 * 24 * 3600_000,
        barsMaxAgeMs: 30 * 24 * 3600_000,
        eventsMaxAgeMs: 7 * 24 * 3600_000,
        replicas: 1,
      }),
    health: z
      .object({
        heartbeatMs: ms.default(1000),
        /** Bucket TTL of actor-health and workers: three heartbeats (a dead worker is noticed within it). */
        ttlMs: ms.default(3000),
      })
      .strict()
      .default({ heartbeatMs: 1000, ttlMs: 3000 }),
    supervisor: z
      .object({
        pollMs: ms.default(1000),
        leaseTtlMs: ms.default(10_000),
        restart: restartSchema.default({
          intensity: 5,
          periodMs: 60_000,
          backoffMs: 250,
          maxBackoffMs: 10_000,
        }),
      })
      .strict()
      .default({
        pollMs: 1000,
        leaseTtlMs: 10_000,
        restart: { intensity: 5, periodMs: 60_000, backoffMs: 250, maxBackoffMs: 10_000 },
      }),
    alerts: z
      .object({
        /** nodemailer SMTP URL (smtp://user:pass@host:587); email alerts are off without it. */
        smtpUrl: z.string().optional(),
        from: z.string().default('tickmesh <tickmesh@localhost>'),
        /** Total time of one delivery attempt (lookup, connect, request, answer). */
        timeoutMs: ms.default(5000),
        maxAttempts: z.number().int().min(1).max(100).default(8),
        backoffMs: ms.default(1000),
        maxBackoffMs: ms.default(5 * 60_000),
        /** How often the dispatcher looks for due deliveries when nothing wakes it. */
        pollMs: ms.default(1000),
        /** Where webhooks may go, and how much of a receiver's time and answer they take. */
        webhooks: webhookPolicySchema.prefault({}),
      })
      .strict()
      .prefault({}),
    analytics: z
      .object({
        /** Data-quality checks: actions and limits (core/quality-config.ts, named defaults there). */
        quality: qualityConfigSchema.prefault({}),
        /** Closed bars per timeframe read from the database to warm indicators up on a cold start. */
        warmupBars: z.number().int().min(0).max(5000).default(300),
        /** How often symbol actors re-read their alert rules (they also react to changes at once). */
        rulesRefreshMs: ms.default(30_000),
      })
      .strict()
      // Parsed (not copied) when absent, so the quality checks' own defaults fill it in.
      .prefault({}),
    writer: z
      .object({
        batchSize: z.number().int().min(1).max(10_000).default(1000),
        flushMs: z.number().int().min(1).default(50),
        /**
         * How often the writer re-reads the known (exchange, symbol) pairs; a bar of a pair it
         * does not know triggers a re-read before it is quarantined.
         */
        symbolsRefreshMs: z.number().int().min(100).default(10_000),
      })
      .strict()
      .prefault({}),
    /** Quotas on the desired symbols (README "Symbols"); refused with TM_ERR_LIMIT. */
    symbols: z
      .object({
        /** Active symbols one exchange may have (addSymbol, setSymbolActive, `tickmesh symbols`). */
        maxActivePerExchange: z.number().int().min(1).default(DEFAULT_MAX_ACTIVE_SYMBOLS),
        /** addSymbol / setSymbolActive / removeSymbol fields (aliases count) in one GraphQL request. */
        maxMutationsPerRequest: z.number().int().min(1).default(DEFAULT_MAX_SYMBOL_MUTATIONS),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /** HS256 key of access tokens (TICKMESH_JWT_SECRET); npm start generates one. */
        jwtSecret: z.string().min(32, 'use at least 32 characters (e.g. `openssl rand -hex 32`)').optional(),
        /** AES-256-GCM key of secrets at rest (TICKMESH_SECRET_KEY): 64 hex digits or base64. */
        secretKey: z.string().optional(),
        accessTtlMs: ms.default(15 * 60_000),
        refreshTtlMs: ms.default(30 * 24 * 3600_000),
        /** Created or reset at start-up when adminPassword is set (TICKMESH_ADMIN_USER / _PASSWORD). */
        adminUser: z.string().default('admin'),
        adminPassword: z.string().optional(),
        /** Failed logins of one user before lock-out; each failure before it adds a growing delay. */
        maxFailuresPerUser: z.number().int().min(1).default(5),
        /** Failed logins from one address before lock-out. */
        maxFailuresPerAddress: z.number().int().min(1).default(50),
        lockoutMs: ms.default(15 * 60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
type Env = Record<string, string | undefined>;

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}

const num = (v: string) => (v.trim() === '' ? Number.NaN : Number(v));
const bool = (v: string) => (/^(1|true|yes|on)$/i.test(v) ? true : /^(0|false|no|off)$/i.test(v) ? false : v);

/** Environment variable → config path and parser. */
const ENV_MAP: Record<string, [string[], (v: string) => unknown]> = {
  LOG_LEVEL: [['logLevel'], String],
  NATS_URL: [['nats', 'url'], String],
  DATABASE_URL: [['database', 'url'], String],
  DATABASE_POOL_MAX: [['database', 'poolMax'], num],
  HOST: [['gateway', 'host'], String],
  PORT: [['gateway', 'port'], num],
  METRICS_PORT: [['metricsPort'], num],
  TICKMESH_ALLOWED_HOSTS: [['gateway', 'http', 'allowedHosts'], commaList],
  TICKMESH_CORS_ORIGINS: [['gateway', 'http', 'corsOrigins'], commaList],
  TICKMESH_EXCHANGES: [['exchangesFile'], String],
  SMTP_URL: [['alerts', 'smtpUrl'], String],
  TICKMESH_WORKER_ID: [['worker', 'id'], String],
  SIM_ENABLED: [['sim', 'enabled'], bool],
  SIM_RATE: [['sim', 'rate'], num],
  SIM_SEED: [['sim', 'seed'], num],
  BAR_GRACE_MS: [['bars', 'graceMs'], num],
  FORMING_THROTTLE_MS: [['bars', 'formingThrottleMs'], num],
  HEARTBEAT_MS: [['health', 'heartbeatMs'], num],
  HEALTH_TTL_MS: [['health', 'ttlMs'], num],
  ...Object.fromEntries(
    NATS_PRINCIPALS.map((p): [string, [string[], (v: string) => unknown]] => [
      natsPasswordVariable(p),
      [['nats', 'passwords', p], String],
    ]),
  ),
  TICKMESH_JWT_SECRET: [['auth', 'jwtSecret'], String],
  TICKMESH_SECRET_KEY: [['auth', 'secretKey'], String],
  TICKMESH_ADMIN_USER: [['auth', 'adminUser'], String],
  TICKMESH_ADMIN_PASSWORD: [['auth', 'adminPassword'], String],
};

/** The environment variable that carries a NATS principal's password (NATS_PASSWORD_WORKER, …). */
export function natsPasswordVariable(principal: NatsPrincipal): string {
  return `NATS_PASSWORD_${principal.toUpperCase()}`;
}

export function loadConfig(
  env: Env = process.env,
  overrides: Record<string, unknown> = {},
): Readonly<Config> {
  let raw: Record<string, unknown> = {};
  if (env.TICKMESH_CONFIG) {
    try {
      raw = JSON.parse(readFileSync(env.TICKMESH_CONFIG, 'utf8'));
    } catch (e) {
      throw new ConfigError(`cannot read TICKMESH_CONFIG ${env.TICKMESH_CONFIG}: ${(e as Error).message}`);
    }
  }
  for (const [name, [path, parse]] of Object.entries(ENV_MAP)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, parse(value));
  }
  const merged = mergeDeep(raw, overrides);
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(z.prettifyError(result.error).replaceAll('\n', '; '));
  return deepFreeze(result.data);
}

/** Merges plain objects recursively; arrays and scalars in `b` replace those in `a`. */
export function mergeDeep(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? mergeDeep(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function defaultWorkerId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;
}
