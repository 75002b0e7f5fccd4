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
  qualityChecks: new Counter({
    name: 'tickmesh_quality_checks_total',
    help: 'Trades judged by the data-quality checks, by check and outcome (quarantined, flagged)',
    labelNames: ['exchange', 'symbol', 'check', 'outcome'] as const,
    registers: [registry],
  }),
  qualityScore: new Gauge({
    name: 'tickmesh_quality_score',
    help: 'Data-quality score per symbol in [0, 1] (share of good trades, exponentially weighted)',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  alertsFired: new Counter({
    name: 'tickmesh_alerts_fired_total',
    help: 'Alert firings recorded (each once)',
    labelNames: ['condition'] as const,
    registers: [registry],
  }),
  alertDeliveries: new Counter({
    name: 'tickmesh_alert_deliveries_total',
    help: 'Alert delivery attempts by channel and outcome (delivered, retry, failed)',
    labelNames: ['channel', 'outcome'] as const,
    registers: [registry],
  }),
  analyticsSeconds: new Histogram({
    name: 'tickmesh_analytics_seconds',
    help: 'Indicators + features + alert evaluation per closed bar',
    buckets: [0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.00025, 0.001],
    registers: [registry],
  }),
  consumerDeliveriesRefused: new Counter({
    name: 'tickmesh_consumer_deliveries_refused_total',
    help: 'JetStream consumer deliveries dropped where only a direct publish belongs (a consumer pointed at a control or live subject)',
    labelNames: ['receiver'] as const,
    registers: [registry],
  }),
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
  sourceBarsReceived: new Counter({
    name: 'tickmesh_source_bars_received_total',
    help: 'Completed 1m source bars (Yahoo chart rows) received and published by exchange actors',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedErrors: new Counter({
    name: 'tickmesh_feed_errors_total',
    help: 'Failed requests of an exchange feed (HTTP errors, rate limits, malformed answers)',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedCircuitState: new Gauge({
    name: 'tickmesh_feed_circuit_state',
    help: 'Circuit breaker of an exchange feed: 0 closed, 1 half-open, 2 open',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedLastDataAge: new Gauge({
    name: 'tickmesh_feed_last_data_age_seconds',
    help: 'Seconds since the end of the last bar (or the last trade) a feed delivered (grows while the market is closed)',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedMarketOpen: new Gauge({
    name: 'tickmesh_feed_market_open',
    help: 'Whether a feed considers the symbol market open (1) or closed by its calendar (0)',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  replayBehind: new Gauge({
    name: 'tickmesh_replay_behind_seconds',
    help: 'How late a paced replay released its last batch against the requested speed',
    labelNames: ['exchange'] as const,
    registers: [registry],
  }),
  feedTradesReceived: new Counter({
    name: 'tickmesh_feed_trades_received_total',
    help: 'Trades a streaming/polling exchange feed handed on (live and repaired), per symbol',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedBackfilled: new Counter({
    name: 'tickmesh_feed_backfilled_trades_total',
    help: 'Trades an exchange feed recovered over REST after a reconnect, stall or restart',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedGaps: new Counter({
    name: 'tickmesh_feed_gaps_total',
    help: 'Unrepairable gaps (history no longer available, repair refused) published as gap marks',
    labelNames: ['exchange', 'symbol'] as const,
    registers: [registry],
  }),
  feedReconnects: new Counter({
    name: 'tickmesh_feed_reconnects_total',
    help: 'Websocket reconnects of an exchange feed (drops, stalls, unreadable frames, refreshes)',
    labelNames: ['exchange'] as const,
    registers: [registry],
  }),
  feedRestWeight: new Gauge({
    name: 'tickmesh_feed_rest_weight_used',
    help: "REST weight used as the exchange reports it (Binance X-MBX-USED-WEIGHT-1M), else the feed's request count",
    labelNames: ['exchange'] as const,
    registers: [registry],
  }),
  wsConnections: new Gauge({
    name: 'tickmesh_graphql_ws_connections',
    help: 'Open graphql-ws sockets',
    registers: [registry],
  }),
  wsClosed: new Counter({
    name: 'tickmesh_graphql_ws_closed_total',
    help: 'graphql-ws sockets closed by the gateway, by reason (slow, protocol, unauthorized, …)',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  wsExecutions: new Counter({
    name: 'tickmesh_graphql_ws_executions_total',
    help: 'Subscription events executed through GraphQL (once per shared key and event)',
    registers: [registry],
  }),
  wsDeliveries: new Counter({
    name: 'tickmesh_graphql_ws_deliveries_total',
    help: 'Subscription messages written to sockets',
    registers: [registry],
  }),
  natsConnectionEvents: new Counter({
    name: 'tickmesh_nats_connection_events_total',
    help: 'NATS connection status events by role and type (disconnect, reconnect, slowConsumer, error, …)',
    labelNames: ['role', 'type'] as const,
    registers: [registry],
  }),
};
