/**
 * Role entry points. Each role opens its own NATS connection and database pool (retrying while
 * the infrastructure comes up), starts its component, and returns a handle whose `stop()`
 * shuts it down gracefully: stop the component (flush, deregister), drain NATS, close the pool.
 */
import { createServer } from 'node:http';
import { ExponentialBackoff, handleAll, type RetryPolicy, retry } from 'cockatiel';
import type { ExchangeAdapters } from '../actors/factory.ts';
import { Worker } from '../actors/worker.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { defaultWorkerId } from '../core/config.ts';
import { createPool, type Pool } from '../core/db.ts';
import { ConfigError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { enableDefaultMetrics, registry } from '../core/metrics.ts';
import { registerMicroService } from '../core/micro.ts';
import { migrate } from '../core/migrate.ts';
import { connectAs, ensureTopology, type Topology } from '../core/nats.ts';
import type { NatsPrincipal } from '../core/nats-permissions.ts';
import { watchNatsStatus } from '../core/nats-status.ts';
import { ACTOR_KINDS, type ActorKind, SERVICES } from '../core/protocol/index.ts';
import { buildGateway } from '../graphql/gateway.ts';
import { ClusterSupervisor } from '../supervisor/supervisor.ts';
import { prepareAuth } from './auth-setup.ts';

export interface RoleHandle {
  name: string;
  stop(): Promise<void>;
}

interface Runtime {
  topo: Topology;
  pool: Pool;
  close(): Promise<void>;
}

/**
 * Waits for NATS / PostgreSQL while they come up (about 5 minutes), logging each retry. One
 * policy per role start, so its listener goes with it instead of piling up on a shared policy.
 */
function startupRetry(role: string, log: Logger): RetryPolicy {
  const policy = retry(handleAll, {
    maxAttempts: 60,
    backoff: new ExponentialBackoff({ initialDelay: 250, maxDelay: 5000 }),
  });
  policy.onRetry((r) =>
    log.warn(
      { role, delayMs: r.delay, err: 'error' in r ? r.error.message : undefined },
      'waiting for NATS / PostgreSQL',
    ),
  );
  return policy;
}

function need(value: string | undefined, name: string): string {
  if (!value) throw new ConfigError(`${name} is required for this role`);
  return value;
}

/**
 * A connection as `principal` and the topology seen through it. Only the supervisor may create
 * streams and buckets: other roles wait here (retrying) until it has.
 */
async function openTopology(
  cfg: Config,
  principal: NatsPrincipal,
  name: string,
  waiting: RetryPolicy,
  log: Logger,
) {
  const nc = await waiting.execute(() => connectAs(cfg, principal, name));
  void watchNatsStatus(nc, principal, log);
  try {
    return await waiting.execute(() => ensureTopology(nc, cfg));
  } catch (e) {
    await nc.close().catch(() => {});
    throw e;
  }
}

async function openRuntime(
  cfg: Config,
  role: 'supervisor' | 'worker' | 'gateway',
  log: Logger,
): Promise<Runtime> {
  need(cfg.nats.url, 'NATS_URL');
  const dbUrl = need(cfg.database.url, 'DATABASE_URL');
  const waiting = startupRetry(role, log);
  const topo = await openTopology(cfg, role, `tickmesh-${role}`, waiting, log);
  const nc = topo.nc;
  const pool = createPool(dbUrl, cfg.database.poolMax, {
    // No GraphQL request's SQL outlives the request's time limit (config gateway.limits).
    statementTimeoutMs: role === 'gateway' ? cfg.gateway.limits.requestTimeoutMs : undefined,
  });
  await waiting.execute(() => pool.query('SELECT 1 FROM symbols LIMIT 1'));
  await prepareAuth(pool, cfg, log.child({ role }));
  return {
    topo,
    pool,
    async close() {
      await nc.drain().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

export async function runMigrate(cfg: Config, log: Logger): Promise<string[]> {
  const url = need(cfg.database.url, 'DATABASE_URL');
  return startupRetry('migrate', log).execute(() => migrate(url, log));
}

export async function startSupervisorRole(
  cfg: Config,
  log: Logger,
  clock: Clock = systemClock,
): Promise<RoleHandle & { supervisor: ClusterSupervisor }> {
  const rt = await openRuntime(cfg, 'supervisor', log);
  const supervisor = new ClusterSupervisor({
    id: defaultWorkerId(),
    topo: rt.topo,
    cfg,
    pool: rt.pool,
    clock,
    log: log.child({ role: 'supervisor' }),
  });
  await supervisor.start();
  return {
    name: 'supervisor',
    supervisor,
    async stop() {
      await supervisor.stop();
      await rt.close();
    },
  };
}

export async function startWorkerRole(
  cfg: Config,
  log: Logger,
  clock: Clock = systemClock,
  id?: string,
  /** Exchange clients on fakes, for tests. */
  adapters?: ExchangeAdapters,
): Promise<RoleHandle & { worker: Worker }> {
  const rt = await openRuntime(cfg, 'worker', log);
  const actorTopos = await openActorTopologies(cfg, log).catch(async (e) => {
    await rt.close();
    throw e;
  });
  const worker = new Worker({
    id: id ?? cfg.worker.id ?? defaultWorkerId(),
    topo: rt.topo,
    cfg,
    pool: rt.pool,
    clock,
    log: log.child({ role: 'worker' }),
    adapters,
    actorTopos,
  });
  const closeActorConnections = () =>
    Promise.all(Object.values(actorTopos).map((t) => t.nc.drain().catch(() => {})));
  await worker.start().catch(async (e) => {
    await closeActorConnections();
    await rt.close();
    throw e;
  });
  return {
    name: 'worker',
    worker,
    async stop() {
      // SIGTERM: hand the actors to other workers first, so their feeds move without a gap.
      await worker.stop({ drain: true });
      await closeActorConnections();
      await rt.close();
    },
  };
}

/** One connection per kind of actor, each as that kind's NATS user (core/nats-permissions.ts). */
async function openActorTopologies(cfg: Config, log: Logger): Promise<Record<ActorKind, Topology>> {
  const waiting = startupRetry('worker', log);
  const opened: Partial<Record<ActorKind, Topology>> = {};
  try {
    for (const kind of ACTOR_KINDS)
      opened[kind] = await openTopology(cfg, kind, `tickmesh-worker-${kind}`, waiting, log);
  } catch (e) {
    await Promise.all(Object.values(opened).map((t) => t.nc.close().catch(() => {})));
    throw e;
  }
  return opened as Record<ActorKind, Topology>;
}

export async function startGatewayRole(cfg: Config, log: Logger): Promise<RoleHandle & { url: string }> {
  enableDefaultMetrics();
  const rt = await openRuntime(cfg, 'gateway', log);
  const { app, hub } = await buildGateway({ cfg, pool: rt.pool, topo: rt.topo, log });
  const address = await app.listen({ host: cfg.gateway.host, port: cfg.gateway.port });
  const service = await registerMicroService(rt.topo.nc, {
    name: SERVICES.gateway,
    role: 'gateway',
    instance: defaultWorkerId(),
    description: 'tickmesh gateway: GraphQL over HTTP and graphql-ws, dashboard',
    log,
    endpoints: {
      status: () => ({ address, subscriptions: hub.subscriberCount, natsTopics: hub.topicCount }),
      actors: () => [],
    },
  });
  const port = Number(new URL(address).port);
  return {
    name: 'gateway',
    url: `http://localhost:${port}`,
    async stop() {
      await service.stop().catch(() => {});
      await app.close();
      await rt.close();
    },
  };
}

/**
 * /metrics (Prometheus) and /healthz on the metrics port: every role has one (the gateway too, so
 * its public port does not show them); `npm start` one for the whole process, on 127.0.0.1.
 */
export async function startMetricsServer(
  port: number,
  host = '0.0.0.0',
): Promise<RoleHandle & { url: string }> {
  enableDefaultMetrics();
  const server = createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', registry.contentType);
      res.end(await registry.metrics());
    } else if (req.url === '/healthz') {
      res.end('{"ok":true}');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = (server.address() as { port: number }).port;
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return {
    name: 'metrics',
    url: `http://${shown}:${bound}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
