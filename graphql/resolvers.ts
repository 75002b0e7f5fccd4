/** GraphQL resolvers: argument validation with clear errors, then Postgres, KV or NATS. */
import { GraphQLScalarType, valueFromASTUntyped } from 'graphql';
import { readRuleOwner } from '../core/alert-rules-store.ts';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import { BadArgumentError, ConfigError, UnknownTimeframeError } from '../core/errors.ts';
import { requestActorRestart } from '../core/micro.ts';
import { listKeys, type Topology } from '../core/nats.ts';
import { OutboundPolicy } from '../core/outbound-policy.ts';
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
import { parseSecretKey, sealSecret } from '../core/secret-box.ts';
import {
  addSymbol,
  assertSymbolExists,
  listSymbols,
  removeSymbol,
  setSymbolActive,
} from '../core/symbols-store.ts';
import {
  AlertRulesApi,
  alertStream,
  ownerScope,
  readAlertEvents,
  readFeatures,
  readLatestFeatures,
  readQuality,
} from './analytics.ts';
import { candleOfBar, checkLimit, parseTime, readCandles } from './candles.ts';
import { gql } from './coded.ts';
import type { Resolvers } from './generated/resolvers-types.ts';
import type {
  ActorHealth as ActorHealthOut,
  AlertFiring,
  MutationAddSymbolArgs,
  MutationCreateAlertRuleArgs,
  MutationDeleteAlertRuleArgs,
  MutationRemoveSymbolArgs,
  MutationRestartActorArgs,
  MutationSetSymbolActiveArgs,
  MutationUpdateAlertRuleArgs,
  QueryAlertEventsArgs,
  QueryAlertRulesArgs,
  QueryCandlesArgs,
  QueryFeaturesArgs,
  QueryLatestFeaturesArgs,
  QueryQualityArgs,
  QuerySymbolsArgs,
  SubscriptionAlertsArgs,
  SubscriptionCandlesArgs,
} from './generated/schema-types.ts';
import { callerOf, type SessionServices, type Sessions, sessionResolvers } from './sessions.ts';
import type { TopicHub } from './topic-hub.ts';

export interface ResolverDeps {
  pool: Pool;
  topo: Topology;
  cfg: Config;
  hub: TopicHub;
  sessions: Sessions;
  services: SessionServices;
}

/** `JSON`: any JSON value, passed through as is (feature rows). */
const jsonScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value.',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (ast) => valueFromASTUntyped(ast),
});

function need(value: string | undefined, what: string): string {
  if (!value) throw new ConfigError(`${what} must be set for the gateway`);
  return value;
}

function timeframeOf(tf: string): Timeframe {
  if (!isTimeframe(tf)) throw new UnknownTimeframeError(tf, TIMEFRAMES);
  return tf;
}

/** An actor id as the actors query shows it (`symbol.sim.BTC-USDT`, `writer.bars`), bounded. */
const ACTOR_ID = /^[a-z]+(\.[A-Za-z0-9_~=-]{1,100}){1,2}$/;

export function buildResolvers({ pool, topo, cfg, hub, sessions, services }: ResolverDeps): Resolvers {
  async function assertSymbol(exchange: string, symbol: string): Promise<void> {
    encodeSymbol(symbol); // validates length and shape with a clear error
    await assertSymbolExists(pool, exchange, symbol);
  }

  async function readActors(): Promise<ActorHealthOut[]> {
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

  const secretKey = parseSecretKey(
    need(cfg.auth.secretKey, 'TICKMESH_SECRET_KEY (the key webhook secrets are encrypted with)'),
  );
  const rules = new AlertRulesApi(
    pool,
    topo,
    (secret) => sealSecret(secretKey, secret),
    new OutboundPolicy(cfg.alerts.webhooks),
  );

  const auth = sessionResolvers(sessions, pool, services);
  return {
    Query: {
      ...auth.Query,
      exchanges: gql(
        async () => (await pool.query('SELECT id, name, kind, enabled FROM exchanges ORDER BY id')).rows,
      ),
      symbols: gql((a: QuerySymbolsArgs) => listSymbols(pool, a)),
      timeframes: () => [...TIMEFRAMES],
      candles: gql(async (a: QueryCandlesArgs) => {
        const timeframe = timeframeOf(a.timeframe);
        const limit = checkLimit(a.limit, cfg.gateway.defaultCandles, cfg.gateway.maxCandles);
        const from = parseTime('from', a.from);
        const to = parseTime('to', a.to);
        await assertSymbol(a.exchange, a.symbol);
        return readCandles(pool, { exchange: a.exchange, symbol: a.symbol, timeframe, from, to, limit });
      }),
      actors: gql(readActors),
      quality: gql(async (a: QueryQualityArgs) => {
        await assertSymbol(a.exchange, a.symbol);
        return readQuality(pool, a.exchange, a.symbol, a.minutes);
      }),
      features: gql(async (a: QueryFeaturesArgs) => {
        const timeframe = timeframeOf(a.timeframe);
        const limit = checkLimit(a.limit, cfg.gateway.defaultCandles, cfg.gateway.maxCandles);
        const from = parseTime('from', a.from);
        const to = parseTime('to', a.to);
        await assertSymbol(a.exchange, a.symbol);
        return readFeatures(pool, { ...a, timeframe, from, to, limit, version: a.version });
      }),
      latestFeatures: gql(async (a: QueryLatestFeaturesArgs) => {
        const timeframe = timeframeOf(a.timeframe);
        await assertSymbol(a.exchange, a.symbol);
        return readLatestFeatures(topo, a.exchange, a.symbol, timeframe);
      }),
      alertRules: gql((a: QueryAlertRulesArgs, ctx) => rules.list(callerOf(ctx), a.exchange, a.symbol)),
      alertEvents: gql((a: QueryAlertEventsArgs, ctx) => readAlertEvents(pool, a, ownerScope(callerOf(ctx)))),
    },
    Mutation: {
      ...auth.Mutation,
      addSymbol: gql((a: MutationAddSymbolArgs) => addSymbol(pool, a.exchange, a.symbol, cfg.symbols)),
      setSymbolActive: gql((a: MutationSetSymbolActiveArgs) =>
        setSymbolActive(pool, a.exchange, a.symbol, a.active, cfg.symbols),
      ),
      removeSymbol: gql((a: MutationRemoveSymbolArgs) => removeSymbol(pool, a.exchange, a.symbol)),
      restartActor: gql(async (a: MutationRestartActorArgs) => {
        if (!ACTOR_ID.test(a.id)) throw new BadArgumentError('id', 'not an actor id (see the actors query)');
        const reply = await requestActorRestart(topo.nc, a.id);
        return (reply as { restarted?: unknown }).restarted === true;
      }),
      // The input is validated again by the rules API (strict, with the evaluator's own schema).
      createAlertRule: gql((a: MutationCreateAlertRuleArgs, ctx) => rules.create(callerOf(ctx), a.input)),
      updateAlertRule: gql((a: MutationUpdateAlertRuleArgs, ctx) =>
        rules.update(callerOf(ctx), a.id, a.input),
      ),
      deleteAlertRule: gql((a: MutationDeleteAlertRuleArgs, ctx) => rules.delete(callerOf(ctx), a.id)),
    },
    Subscription: {
      candles: {
        subscribe: gql(async (a: SubscriptionCandlesArgs) => {
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
        subscribe: gql(async (a: SubscriptionAlertsArgs, ctx) => {
          const owner = ownerScope(callerOf(ctx));
          const seen = new Map<string, boolean>();
          // A trader sees the firings of their own rules only (owners looked up once per rule).
          const maySee = async (ruleId: string) => {
            if (owner === null) return true;
            if (!seen.has(ruleId)) seen.set(ruleId, (await readRuleOwner(pool, ruleId)) === owner);
            return seen.get(ruleId)!;
          };
          return alertStream(hub, a, maySee);
        }),
        resolve: (firing: AlertFiring) => firing,
      },
    },
    JSON: jsonScalar,
  };
}
