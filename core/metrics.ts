/**
 * prom-client metrics shared by every role. One registry per process; names are
 * tickmesh_<what>_<unit>. Dashboards in deploy/grafana rely on these names.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
let defaultsOn = false;

export function enableDefaultMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: 'tickmesh_' });
}

export const metrics = {
  tradesIn: new Counter({
    name: 'tickmesh_trades_in_total',
    help: 'Trades applied to bars by symbol actors',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  tradesPublished: new Counter({
    name: 'tickmesh_trades_published_total',
    help: 'Trades published to JetStream by exchange actors',
    labelNames: ['exchange'] as const,
    registers: [registry],
  }),
  barsOut: new Counter({
    name: 'tickmesh_bars_out_total',
    help: 'Closed bars (and revisions) published',
    labelNames: ['timeframe'] as const,
    registers: [registry],
  }),
  quarantined: new Counter({
    name: 'tickmesh_quarantined_total',
    help: 'Messages or trades sent to quarantine',
    labelNames: ['source', 'reason'] as const,
    registers: [registry],
  }),
  consumerLag: new Gauge({
    name: 'tickmesh_consumer_lag',
    help: 'Messages pending for an actor consumer',
    labelNames: ['actor'] as const,
    registers: [registry],
  }),
  actorRestarts: new Counter({
    name: 'tickmesh_actor_restarts_total',
    help: 'Actor restarts after a crash',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  actorsRunning: new Gauge({
    name: 'tickmesh_actors_running',
    help: 'Actors running in this process',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  dbBatchSeconds: new Histogram({
    name: 'tickmesh_db_batch_seconds',
    help: 'Duration of one writer batch upsert',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  }),
  dbRowsWritten: new Counter({
    name: 'tickmesh_db_rows_written_total',
    help: 'Bars upserted by the writer',
    registers: [registry],
  }),
  subscriptions: new Gauge({
    name: 'tickmesh_graphql_subscriptions',
    help: 'Open GraphQL subscriptions',
    registers: [registry],
  }),
  subscriptionDrops: new Counter({
    name: 'tickmesh_graphql_subscription_drops_total',
    help: 'Subscription messages dropped or clients cut off because they were too slow',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  natsTopics: new Gauge({
    name: 'tickmesh_gateway_nats_topics',
    help: 'Distinct NATS subscriptions shared by GraphQL subscribers',
    registers: [registry],
  }),
};
