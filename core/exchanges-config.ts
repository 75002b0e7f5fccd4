/**
 * The exchanges file (TICKMESH_EXCHANGES, YAML or JSON): which exchanges exist and how their
 * exchange actors connect. Validated against one strict schema per adapter kind; errors name
 * the exchange and the field. The supervisor upserts it into the `exchanges` table (options in
 * `exchanges.options`) at start and whenever the file changes; symbols listed here are added
 * once and then live in the `symbols` table (GraphQL `addSymbol`/`setSymbolActive`,
 * `tickmesh symbols`), so deactivating a symbol is not undone by the next reload.
 *
 * Secrets never go into the file or the database: `credentialsEnv` names environment variables
 * that the worker running the actor reads.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { inTransaction, type Pool } from './db.ts';
import { ConfigError } from './errors.ts';
import { symbolSchema } from './protocol/symbols.ts';

const ms = z.number().int().positive();

const common = {
  name: z.string().min(1).max(100).optional(),
  enabled: z.boolean().default(true),
  /**
   * Added to `symbols` when missing (so a removed one comes back on the next apply); never
   * deactivated or reactivated by a reload. Each passes the symbol grammar (parseSymbol).
   */
  symbols: z.array(symbolSchema).max(5000).default([]),
};

export const stalenessSchema = z
  .object({
    /** A symbol is stale after `factor` × its own typical inter-trade interval… */
    factor: z.number().positive().default(10),
    /** …but never sooner than this… */
    minMs: ms.default(5000),
    /** …and always after this, however quiet the symbol has been. */
    maxMs: ms.default(15 * 60_000),
  })
  .strict()
  .refine((s) => s.minMs <= s.maxMs, { message: 'minMs must not exceed maxMs' });

export const breakerSchema = z
  .object({
    /** Consecutive failures that open the circuit. */
    failures: z.number().int().min(1).default(5),
    /** Time the circuit stays open before a half-open probe. */
    halfOpenAfterMs: ms.default(30_000),
  })
  .strict();

export const backoffSchema = z
  .object({
    initialMs: ms.default(500),
    maxMs: ms.default(60_000),
  })
  .strict();

const proxyUrl = (schemes: string[]) =>
  z
    .string()
    .url()
    .refine((u) => schemes.some((scheme) => u.startsWith(`${scheme}://`)), {
      message: `must start with ${schemes.map((x) => `${x}://`).join(' or ')}`,
    });

/**
 * Where ccxt's requests go through (ccxt's own proxy settings, one for REST and one for
 * websockets): REST through undici, websockets through the http/https/socks proxy agents.
 */
export const ccxtProxySchema = z
  .object({
    /** REST through an HTTP proxy (ccxt `httpProxy`)… */
    http: proxyUrl(['http']).optional(),
    /** …or an HTTPS (CONNECT) proxy (ccxt `httpsProxy`)… */
    https: proxyUrl(['http', 'https']).optional(),
    /** …or a SOCKS5 proxy (ccxt `socksProxy`). */
    socks: proxyUrl(['socks5', 'socks5h', 'socks']).optional(),
    /** Websockets through an HTTP proxy (ccxt `wsProxy`)… */
    ws: proxyUrl(['http']).optional(),
    /** …or an HTTPS proxy (ccxt `wssProxy`)… */
    wss: proxyUrl(['http', 'https']).optional(),
    /** …or a SOCKS proxy (ccxt `wsSocksProxy`). */
    wsSocks: proxyUrl(['socks4', 'socks4a', 'socks5', 'socks5h', 'socks']).optional(),
  })
  .strict()
  .refine((p) => [p.http, p.https, p.socks].filter(Boolean).length <= 1, {
    message: 'at most one of http, https, socks (ccxt takes one REST proxy)',
  })
  .refine((p) => [p.ws, p.wss, p.wsSocks].filter(Boolean).length <= 1, {
    message: 'at most one of ws, wss, wsSocks (ccxt takes one websocket proxy)',
  });

export const ccxtSchema = z
  .object({
    kind: z.literal('ccxt'),
    ...common,
    ccxt: z
      .object({
        /** ccxt exchange id: binance, kraken, coinbase, … */
        id: z.string().regex(/^[a-z0-9]+$/),
        /** ws: streaming only; poll: REST only; auto: streaming where the exchange has it. */
        mode: z.enum(['auto', 'ws', 'poll']).default('auto'),
        pollIntervalMs: ms.default(2000),
        /** Passed to the ccxt constructor's `options`. */
        options: z.record(z.string(), z.unknown()).default({}),
        /**
         * Overrides of the ccxt instance's `urls`, merged over ccxt's own (test networks, a local
         * gateway, a recording proxy, a fake): plain `ws://` and `http://` work.
         */
        urls: z.record(z.string(), z.unknown()).optional(),
        /** ccxt's spacing of REST requests (its `rateLimit`); default: ccxt's for the exchange. */
        rateLimitMs: z.number().int().min(1).optional(),
        proxy: ccxtProxySchema.optional(),
        /** PEM files of extra certificate authorities to trust (besides the system's), REST and websocket. */
        caFile: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
        /** Environment variable names holding credentials (public market data needs none). */
        credentialsEnv: z
          .object({ apiKey: z.string(), secret: z.string(), password: z.string().optional() })
          .strict()
          .optional(),
      })
      .strict(),
    staleness: stalenessSchema.default({ factor: 10, minMs: 5000, maxMs: 15 * 60_000 }),
    breaker: breakerSchema.default({ failures: 5, halfOpenAfterMs: 30_000 }),
    backoff: backoffSchema.default({ initialMs: 500, maxMs: 60_000 }),
    /** Reconnect before the exchange's own connection limit (Binance: 24 h); 0 never. */
    refreshAfterMs: z
      .number()
      .int()
      .min(0)
      .default(23 * 3600_000 + 50 * 60_000),
    /** REST repair paging: trades per page and pages per repair. */
    repair: z
      .object({
        pageLimit: z.number().int().min(1).max(5000).default(1000),
        maxPages: z.number().int().min(1).default(1000),
      })
      .strict()
      .default({ pageLimit: 1000, maxPages: 1000 }),
  })
  .strict();

const yahooSchema = z
  .object({
    kind: z.literal('yahoo'),
    ...common,
    pollIntervalMs: ms.default(60_000),
    breaker: breakerSchema.default({ failures: 5, halfOpenAfterMs: 30_000 }),
    backoff: backoffSchema.default({ initialMs: 1000, maxMs: 5 * 60_000 }),
    /**
     * How far behind real time Yahoo serves a market, per calendar (default: BIST 15 min, the
     * others 0); bars count as complete that much later.
     */
    dataDelayMs: z
      .object({
        NYSE: z.number().int().min(0),
        NASDAQ: z.number().int().min(0),
        BIST: z.number().int().min(0),
        '24x7': z.number().int().min(0),
      })
      .partial()
      .strict()
      .optional(),
  })
  .strict();

const replaySchema = z
  .object({
    kind: z.literal('replay'),
    ...common,
    source: z.discriminatedUnion('type', [
      z
        .object({
          type: z.literal('file'),
          path: z.string().min(1),
          format: z.enum(['ndjson', 'csv', 'json']).optional(),
        })
        .strict(),
      z
        .object({
          type: z.literal('database'),
          /** Exchange whose stored trades are replayed. */
          exchange: z.string(),
          from: z.string().datetime().optional(),
          to: z.string().datetime().optional(),
        })
        .strict(),
    ]),
    /** 1 = real time, 60 = a minute per second, "max" = as fast as possible. */
    speed: z.union([z.number().positive(), z.literal('max')]).default('max'),
  })
  .strict();

const simSchema = z.object({ kind: z.literal('sim'), ...common }).strict();
const externalSchema = z.object({ kind: z.literal('external'), ...common }).strict();

export const exchangeEntrySchema = z.discriminatedUnion('kind', [
  ccxtSchema,
  yahooSchema,
  replaySchema,
  simSchema,
  externalSchema,
]);
export type ExchangeEntry = z.infer<typeof exchangeEntrySchema>;
export type CcxtExchangeOptions = z.infer<typeof ccxtSchema>;
export type YahooExchangeOptions = z.infer<typeof yahooSchema>;
export type ReplayExchangeOptions = z.infer<typeof replaySchema>;

export const exchangesFileSchema = z
  .object({
    exchanges: z.record(
      z.string().regex(/^[a-z][a-z0-9]{0,31}$/, 'exchange ids are [a-z][a-z0-9]{0,31}'),
      exchangeEntrySchema,
    ),
  })
  .strict();
export type ExchangesFile = z.infer<typeof exchangesFileSchema>;

/** Parses and validates the text of an exchanges file (YAML is a superset of JSON). */
export function parseExchangesFile(text: string, source = 'exchanges file'): ExchangesFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${source}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  const result = exchangesFileSchema.safeParse(raw ?? {});
  if (!result.success)
    throw new ConfigError(`${source}: ${z.prettifyError(result.error).replaceAll('\n', '; ')}`);
  return result.data;
}

export function loadExchangesFile(path: string): ExchangesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the exchanges file ${path}: ${(e as Error).message}`);
  }
  return parseExchangesFile(text, path);
}

/** The adapter options stored in `exchanges.options` (everything but identity and symbols). */
export function optionsOf(entry: ExchangeEntry): Record<string, unknown> {
  const { kind: _k, name: _n, enabled: _e, symbols: _s, ...options } = entry;
  return options;
}

/** Validates stored options for an exchange kind (the worker re-checks what the DB holds). */
export function parseStoredOptions(kind: string, options: unknown): ExchangeEntry {
  const result = exchangeEntrySchema.safeParse({ ...(options as object), kind });
  if (!result.success)
    throw new ConfigError(
      `stored options of a ${kind} exchange: ${z.prettifyError(result.error).replaceAll('\n', '; ')}`,
    );
  return result.data;
}

/**
 * Upserts the file's exchanges into the database in one transaction. Returns the ids changed.
 * Exchanges missing from the file are left alone (the simulator and GraphQL-made ones).
 */
export async function syncExchanges(pool: Pool, file: ExchangesFile): Promise<string[]> {
  return inTransaction(pool, async (client) => {
    const changed: string[] = [];
    for (const [id, entry] of Object.entries(file.exchanges)) {
      const { rowCount } = await client.query(
        `INSERT INTO exchanges (id, name, kind, enabled, options) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
           enabled = EXCLUDED.enabled, options = EXCLUDED.options
         WHERE (exchanges.name, exchanges.kind, exchanges.enabled, exchanges.options)
           IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.enabled, EXCLUDED.options)`,
        [id, entry.name ?? id, entry.kind, entry.enabled, JSON.stringify(optionsOf(entry))],
      );
      const added = await client.query(
        `INSERT INTO symbols (exchange, symbol) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`,
        [id, entry.symbols],
      );
      if ((rowCount ?? 0) > 0 || (added.rowCount ?? 0) > 0) changed.push(id);
    }
    return changed;
  });
}
