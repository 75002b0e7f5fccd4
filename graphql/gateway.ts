/**
 * The gateway: fastify + mercurius. Each concern is a named plugin (ops endpoints, GraphQL,
 * dashboard assets) so it can be tested alone with `app.inject()`.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import mercurius from 'mercurius';
import { type Clock, systemClock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Pool } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type { Topology } from '../core/nats.ts';
import { AccessTokens } from './access-tokens.ts';
import { AuditTrail } from './audit-trail.ts';
import { authOptions, installRoleChecks } from './auth.ts';
import { Callers } from './callers.ts';
import { CredentialWatch } from './credential-watch.ts';
import { errorFormatter, LogThrottle } from './error-format.ts';
import { httpPolicy, httpPolicyPlugin, upgradeRefusal } from './http-policy.ts';
import { installLimits, listLimits } from './limits.ts';
import { LoginGuard } from './login-guard.ts';
import { RequestBudgets } from './rate-limits.ts';
import { buildResolvers } from './resolvers.ts';
import { Sessions } from './sessions.ts';
import { installSymbolMutationLimit } from './symbol-limits.ts';
import { TopicHub } from './topic-hub.ts';
import type { SubscriptionResolver } from './ws-documents.ts';
import { barRefill, refillOnReconnect, startWsGateway } from './ws-gateway.ts';
import type { UpgradeRefusal } from './ws-server.ts';

// mercurius validates with graphql's CommonJS build: a rule it runs must come from that build.
const { NoSchemaIntrospectionCustomRule } = createRequire(import.meta.url)(
  'graphql',
) as typeof import('graphql');

export const SCHEMA = readFileSync(fileURLToPath(new URL('./schema.graphql', import.meta.url)), 'utf8');
const DEFAULT_UI_DIR = fileURLToPath(new URL('../ui/dist', import.meta.url));

export interface GatewayDeps {
  cfg: Config;
  pool: Pool;
  topo: Topology;
  log: Logger;
  /** Token issue and expiry time (default: the system clock). */
  clock?: Clock;
  /** Why to refuse a WebSocket upgrade (its status and message), or null (default: the HTTP policy). */
  checkUpgrade?: (req: IncomingMessage) => UpgradeRefusal | null;
  /** Charges a graphql-ws subscribe to its principal: retry-after ms when over budget, else null. */
  chargeSubscribe?: (principalKey: string) => Promise<number | null>;
}

function plugin(name: string, fn: FastifyPluginAsync): FastifyPluginAsync {
  Object.assign(fn, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name });
  Object.assign(fn, { [Symbol.for('plugin-meta')]: { name, fastify: '5.x' } });
  return fn;
}

/**
 * `/healthz` (alive), `/readyz` (NATS and Postgres reachable). `/metrics` is not here: it is served
 * on the metrics port (launcher/roles.ts startMetricsServer), not to the public.
 */
export const opsPlugin = (deps: Pick<GatewayDeps, 'pool' | 'topo'>) =>
  plugin('tickmesh-ops', async (app) => {
    app.get('/healthz', async () => ({ ok: true }));
    app.get('/readyz', async (_req, reply) => {
      const checks: Record<string, string> = {};
      checks.nats = deps.topo.nc.isClosed() ? 'closed' : 'ok';
      try {
        await deps.pool.query('SELECT 1');
        checks.database = 'ok';
      } catch (e) {
        // The driver's message names hosts and users: it goes to the log only.
        checks.database = 'unreachable';
        _req.log.warn({ err: (e as Error).message }, 'readiness: database unreachable');
      }
      const ready = Object.values(checks).every((v) => v === 'ok');
      return reply.code(ready ? 200 : 503).send({ ready, checks });
    });
  });

export const graphqlPlugin = (deps: GatewayDeps, hub: TopicHub) =>
  plugin('tickmesh-graphql', async (app) => {
    const clock = deps.clock ?? systemClock;
    const tokens = new AccessTokens(deps.cfg.auth.jwtSecret, deps.cfg.auth.accessTtlMs, clock);
    const sessions = new Sessions(deps.pool, tokens, deps.cfg.auth.refreshTtlMs);
    const trail = new AuditTrail(deps.pool, deps.log);
    const services = { guard: new LoginGuard(deps.cfg.auth, deps.pool), trail, clock };
    const callers = new Callers(deps.pool, tokens);
    const watch = new CredentialWatch(deps.pool.options, callers, deps.log.child({ role: 'gateway' }));
    await watch.start();
    app.addHook('onClose', async () => watch.close());
    const auth = authOptions(callers);
    const limits = deps.cfg.gateway.limits;
    const throttle = new LogThrottle(limits.clientErrorLogsPerSecond, clock);
    const budgets = new RequestBudgets(deps.cfg.gateway.rateLimits, deps.pool);
    const resolvers = buildResolvers({
      pool: deps.pool,
      topo: deps.topo,
      cfg: deps.cfg,
      hub,
      sessions,
      services,
    });
    // graphql-ws is our own server (graphql/ws-server.ts); mercurius serves HTTP only.
    const ws = startWsGateway({
      cfg: deps.cfg,
      sdl: SCHEMA,
      subscriptions: resolvers.Subscription as unknown as Record<string, SubscriptionResolver>,
      callers,
      watch,
      clock,
      log: deps.log.child({ role: 'gateway' }),
      server: app.server,
      // The HTTP policy's Host and Origin checks, and the subscribe budget, for every socket.
      checkUpgrade:
        deps.checkUpgrade ??
        ((req) =>
          upgradeRefusal(
            req,
            httpPolicy(deps.cfg.gateway.http, deps.cfg.gateway.port || req.socket.localPort || 0),
          )),
      chargeSubscribe: deps.chargeSubscribe ?? ((principal) => budgets.consume(principal, 'subscribe')),
    });
    app.decorate('wsServer', ws.server);
    app.decorate('fanout', ws.fanout);
    app.addHook('onClose', async () => {
      ws.fanout.close();
      await ws.server.close();
    });
    await app.register(mercurius, {
      schema: SCHEMA,
      resolvers,
      context: auth.context,
      // graphql-ws is graphql/ws-server.ts.
      subscription: false,
      // Depth, aliases, rows and size are checked by graphql/limits.ts (TM_ERR_LIMIT).
      graphql: { parseOptions: { maxTokens: limits.maxTokens } },
      validationRules: limits.introspection ? [] : [NoSchemaIntrospectionCustomRule],
      errorFormatter: errorFormatter(
        deps.log.child({ role: 'gateway' }),
        throttle,
        limits.requestTimeoutMs,
      ) as never,
      graphiql: false,
      path: '/graphql',
    });
    installLimits(app, { limits, defaults: listLimits(deps.cfg), budgets });
    installRoleChecks(app, trail);
    installSymbolMutationLimit(app, deps.cfg.symbols.maxMutationsPerRequest);
  });

export const uiPlugin = (uiDir: string) =>
  plugin('tickmesh-ui', async (app) => {
    if (!existsSync(`${uiDir}/index.html`)) {
      app.get('/', async (_req, reply) =>
        reply
          .type('text/plain')
          .send('The dashboard is not built yet: run `npm run build:ui` (npm start does it for you).'),
      );
      return;
    }
    await app.register(fastifyStatic, { root: uiDir, prefix: '/', wildcard: false });
  });

export async function buildGateway(deps: GatewayDeps): Promise<{ app: FastifyInstance; hub: TopicHub }> {
  // Request logs are info-level noise for a dashboard polling every few seconds: warn and above only.
  const app = Fastify({
    loggerInstance: deps.log.child({ role: 'gateway' }, { level: 'warn' }),
    bodyLimit: 256 * 1024,
  });
  await app.register(httpPolicyPlugin(deps.cfg.gateway));
  const hub = new TopicHub(deps.topo.nc, deps.cfg.gateway.subscriberQueue, {
    ingressBacklog: deps.cfg.gateway.ws.ingressBacklog,
    refill: barRefill(deps.topo),
  });
  void refillOnReconnect(deps.topo.nc, hub, deps.log.child({ role: 'gateway' }));
  await app.register(opsPlugin(deps));
  await app.register(graphqlPlugin(deps, hub));
  await app.register(uiPlugin(deps.cfg.gateway.uiDir ?? DEFAULT_UI_DIR));
  app.addHook('onClose', async () => hub.close());
  return { app: app as unknown as FastifyInstance, hub };
}
