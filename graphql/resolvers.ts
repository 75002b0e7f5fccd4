/** GraphQL resolvers: argument validation with clear errors, then Postgres, KV or NATS. */
import { GraphQLScalarType, valueFromASTUntyped } from 'graphql';
import mercurius from 'mercurius';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import { TmError, UnknownSymbolError, UnknownTimeframeError } from '../core/errors.ts';
import { listKeys, type Topology } from '../core/nats.ts';
import {
  type ActorHealth,
  actorHealthSchema,
  type Bar,
  BUCKETS,
  decodeJson,
  decodeWith,
  encodeSymbol,
  isLiveSubject,
  isTimeframe,
  subjects,
  TIMEFRAMES,
  type Timeframe,
  validateBar,
} from '../core/protocol/index.ts';
import { addSymbol, listSymbols, setSymbolActive } from '../core/symbols-store.ts';
import {
  AlertRulesApi,
  alertStream,
  readAlertEvents,
  readFeatures,
  readLatestFeatures,
  readQuality,
} from './analytics.ts';
import { type Candle, candleOfBar, checkLimit, parseTime, readCandles } from './candles.ts';
import type { TopicHub } from './topic-hub.ts';

export interface ResolverDeps {
  pool: Pool;
  topo: Topology;
  cfg: Config;
  hub: TopicHub;
}

/** Turns our errors into GraphQL errors carrying `extensions.code`. */
function gql<A, R>(fn: (args: A) => Promise<R>): (root: unknown, args: A) => Promise<R> {
  return async (_root, args) => {
    try {
      return await fn(args);
    } catch (e) {
      if (e instanceof TmError) throw new mercurius.ErrorWithProps(e.message, { code: e.code }, e.status);
      throw e;
    }
  };
}

/** `JSON`: any JSON value, passed through as is (feature rows). */
const jsonScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value.',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (ast) => valueFromASTUntyped(ast),
});

function timeframeOf(tf: string): Timeframe {
  if (!isTimeframe(tf)) throw new UnknownTimeframeError(tf, TIMEFRAMES);
  return tf;
}

export function buildResolvers({ pool, topo, cfg, hub }: ResolverDeps) {
  async function assertSymbol(exchange: string, symbol: string): Promise<void> {
    encodeSymbol(symbol); // validates length and shape with a clear error
    const { rows } = await pool.query('SELECT 1 FROM symbols WHERE exchange = $1 AND symbol = $2', [
      exchange,
      symbol,
    ]);
    if (rows.length === 0) throw new UnknownSymbolError(exchange, symbol);
  }

  async function readActors() {
    const kv = topo.kv.health;
    const keys = await listKeys(topo.jsm, BUCKETS.actorHealth);
    const now = Date.now();
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    const out = [];
    for (const e of entries) {
      if (e?.operation !== 'PUT') continue;
      const rec = decodeWith(actorHealthSchema, e.value);
      if (!rec.ok) continue;
      const h: ActorHealth = rec.value;
      out.push({
        ...h,
        startedAt: h.startedAt ? new Date(h.startedAt).toISOString() : null,
        lastEventAt: h.lastEventAt ? new Date(h.lastEventAt).toISOString() : null,
        stale: now - h.updatedAt > cfg.health.ttlMs,
      });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  const rules = new AlertRulesApi(pool, topo);
  type SymbolArgs = { exchange: string; symbol: string };
  type CandleArgs = SymbolArgs & {
    timeframe: string;
    from?: string | null;
    to?: string | null;
    limit?: number | null;
  };

  return {
    Query: {
      exchanges: gql(
        async () => (await pool.query('SELECT id, name, kind, enabled FROM exchanges ORDER BY id')).rows,
      ),
      symbols: gql((a: { exchange?: string | null; active?: boolean | null }) => listSymbols(pool, a)),
      timeframes: () => [...TIMEFRAMES],
      candles: gql(async (a: CandleArgs): Promise<Candle[]> => {
        const timeframe = timeframeOf(a.timeframe);
        const limit = checkLimit(a.limit, cfg.gateway.defaultCandles, cfg.gateway.maxCandles);
        const from = parseTime('from', a.from);
        const to = parseTime('to', a.to);
        await assertSymbol(a.exchange, a.symbol);
        return readCandles(pool, { exchange: a.exchange, symbol: a.symbol, timeframe, from, to, limit });
      }),
      actors: gql(readActors),
      quality: gql(async (a: SymbolArgs & { minutes?: number | null }) => {
        await assertSymbol(a.exchange, a.symbol);
        return readQuality(pool, a.exchange, a.symbol, a.minutes);
      }),
      features: gql(async (a: CandleArgs & { version?: number | null }) => {
        const timeframe = timeframeOf(a.timeframe);
        const limit = checkLimit(a.limit, cfg.gateway.defaultCandles, cfg.gateway.maxCandles);
        const from = parseTime('from', a.from);
        const to = parseTime('to', a.to);
        await assertSymbol(a.exchange, a.symbol);
        return readFeatures(pool, { ...a, timeframe, from, to, limit, version: a.version });
      }),
      latestFeatures: gql(async (a: SymbolArgs & { timeframe: string }) => {
        const timeframe = timeframeOf(a.timeframe);
        await assertSymbol(a.exchange, a.symbol);
        return readLatestFeatures(topo, a.exchange, a.symbol, timeframe);
      }),
      alertRules: gql((a: { exchange?: string | null; symbol?: string | null }) =>
        rules.list(a.exchange, a.symbol),
      ),
      alertEvents: gql(
        (a: {
          ruleId?: string | null;
          exchange?: string | null;
          symbol?: string | null;
          limit?: number | null;
        }) => readAlertEvents(pool, a),
      ),
    },
    Mutation: {
      addSymbol: gql((a: SymbolArgs) => addSymbol(pool, a.exchange, a.symbol)),
      setSymbolActive: gql((a: SymbolArgs & { active: boolean }) =>
        setSymbolActive(pool, a.exchange, a.symbol, a.active),
      ),
      createAlertRule: gql((a: { input: unknown }) => rules.create(a.input)),
      updateAlertRule: gql((a: { id: string; input: unknown }) => rules.update(a.id, a.input)),
      deleteAlertRule: gql((a: { id: string }) => rules.delete(a.id)),
    },
    Subscription: {
      candles: {
        subscribe: gql(async (a: { exchange: string; symbol: string; timeframe: string }) => {
          const timeframe = timeframeOf(a.timeframe);
          await assertSymbol(a.exchange, a.symbol);
          return hub.subscribe<Bar>(
            subjects.liveAndClosed(timeframe, a.exchange, a.symbol),
            (subject, data) => {
              const parsed = decodeJson(data);
              const bar = parsed.ok ? validateBar(parsed.value) : parsed;
              if (!bar.ok) return null;
              // Forming updates replace each other in a slow client's queue; closed bars never do.
              return { value: bar.value, coalesceKey: isLiveSubject(subject) ? 'forming' : null };
            },
          );
        }),
        resolve: (bar: Bar) => candleOfBar(bar),
      },
      alerts: {
        subscribe: gql(
          async (a: { exchange?: string | null; symbol?: string | null; ruleId?: string | null }) =>
            alertStream(hub, a),
        ),
        resolve: (firing: unknown) => firing,
      },
    },
    JSON: jsonScalar,
  };
}
