/**
 * Every subject, stream, consumer, bucket, message id and service name in one place.
 * Topics read broad → narrow: md.bar.1m.binance.BTC-USDT. Nobody else concatenates subjects.
 */
import { encodeSymbol, kvKeyOfToken } from './symbols.ts';
import type { Timeframe } from './timeframes.ts';

export const STREAMS = Object.freeze({
  trades: 'TRADES',
  bars: 'BARS',
  events: 'EVENTS',
});

export const BUCKETS = Object.freeze({
  actorHealth: 'actor-health',
  actorAssign: 'actor-assign',
  workers: 'workers',
  supervisorLeader: 'supervisor-leader',
  /** Symbol actors' resume snapshots (bar-builder state + stream position). */
  symbolState: 'symbol-state',
  featuresLatest: 'features-latest',
});

export const SERVICES = Object.freeze({
  worker: 'tickmesh-worker',
  supervisor: 'tickmesh-supervisor',
  gateway: 'tickmesh-gateway',
});

export const subjects = Object.freeze({
  trade: (ex: string, sym: string) => `md.trade.${ex}.${encodeSymbol(sym)}`,
  tradeAll: 'md.trade.>',
  bar: (tf: Timeframe, ex: string, sym: string) => `md.bar.${tf}.${ex}.${encodeSymbol(sym)}`,
  barAll: 'md.bar.>',
  /** Changed indicator values of an already closed bar (after an older bar's revision). */
  analyticsUpdate: (tf: Timeframe, ex: string, sym: string) => `md.bar.ind.${tf}.${ex}.${encodeSymbol(sym)}`,
  live: (tf: Timeframe, ex: string, sym: string) => `md.live.${tf}.${ex}.${encodeSymbol(sym)}`,
  /** Forming (md.live) and closed (md.bar) bars of one series with one subscription. */
  liveAndClosed: (tf: Timeframe, ex: string, sym: string) => `md.*.${tf}.${ex}.${encodeSymbol(sym)}`,
  quality: (ex: string, sym: string) => `md.quality.${ex}.${encodeSymbol(sym)}`,
  quarantine: (ex: string, sym: string) => `md.quarantine.${ex}.${encodeSymbol(sym)}`,
  alert: (ruleId: string) => `md.alert.${ruleId}`,
  alertAll: 'md.alert.>',
  /** Core NATS: alert rules of a symbol changed (its actor reloads them). */
  rulesChanged: (ex: string, sym: string) => `tm.ctl.rules.${ex}.${encodeSymbol(sym)}`,
  actorEvent: (event: string, actorId: string) => `sys.actor.${event}.${actorId}`,
  eventStreamSubjects: ['md.quality.>', 'md.quarantine.>', 'md.alert.>', 'sys.actor.>'],
  /** BARS messages the bar writer could not store (a quarantine subject of its own). */
  writerQuarantine: () => 'md.quarantine.writer.bars',
});

/** The kind of a forming/closed subject (`md.live…` or `md.bar…`). */
export function isLiveSubject(subject: string): boolean {
  return subject.startsWith('md.live.');
}

/** The closed-bar subject of a `liveAndClosed` subscription subject, or null for any other. */
export function closedSubjectOf(subscription: string): string | null {
  return subscription.startsWith('md.*.') ? `md.bar.${subscription.slice('md.*.'.length)}` : null;
}

export const actorIds = Object.freeze({
  exchange: (ex: string) => `exchange.${ex}`,
  symbol: (ex: string, sym: string) => `symbol.${ex}.${kvKeyOfToken(encodeSymbol(sym))}`,
  writer: () => 'writer.bars',
  alertDispatcher: () => 'alerts.dispatcher',
});

export const consumers = Object.freeze({
  /** Durable consumer of one symbol's trades. */
  symbolTrades: (ex: string, sym: string) => `sym_${ex}_${encodeSymbol(sym).replaceAll('~', '=')}`,
  barWriter: 'writer_bars',
  alertDispatcher: 'alerts_dispatcher',
});

/**
 * The symbol actor a durable of `TRADES` belongs to (`sym_<ex>_<key>` → `symbol.<ex>.<key>`), or
 * null for any other consumer. Exchange ids have no `_`, so the first one after the prefix ends it.
 */
export function symbolActorOfConsumer(name: string): string | null {
  const m = /^sym_([a-z][a-z0-9]{0,31})_([A-Za-z0-9_=-]+)$/.exec(name);
  return m ? `symbol.${m[1]}.${m[2]}` : null;
}

export const msgIds = Object.freeze({
  trades: (ex: string, sym: string, firstId: string, lastId: string) =>
    firstId === lastId
      ? `${ex}:${encodeSymbol(sym)}:${firstId}`
      : `${ex}:${encodeSymbol(sym)}:${firstId}-${lastId}`,
  bar: (tf: Timeframe, ex: string, sym: string, openTime: number, rev: number) =>
    `bar:${tf}:${ex}:${encodeSymbol(sym)}:${openTime}:${rev}`,
  /** A batch of source bars (Yahoo 1m chart rows), by the open times of its first and last bar. */
  sourceBars: (ex: string, sym: string, firstT: number, lastT: number) =>
    `${ex}:${encodeSymbol(sym)}:bars:${firstT}-${lastT}`,
  /** An analytics update of bar `openTime` caused by the revision `cause` (tf:t:rev of the revised bar). */
  analyticsUpdate: (tf: Timeframe, ex: string, sym: string, openTime: number, cause: string) =>
    `ind:${tf}:${ex}:${encodeSymbol(sym)}:${openTime}:${cause}`,
  /** An alert firing (its deterministic id). */
  alert: (firingId: string) => `alert:${firingId}`,
});

/** KV key of a symbol actor's resume snapshot. */
export const stateKeys = Object.freeze({
  symbol: (ex: string, sym: string) => `${ex}.${kvKeyOfToken(encodeSymbol(sym))}`,
  /** KV `features-latest`: newest ML features of one series. */
  features: (ex: string, sym: string, tf: Timeframe) => `${ex}.${kvKeyOfToken(encodeSymbol(sym))}.${tf}`,
});

/** Filters over many subjects (stream purges and per-subject counts). */
export const subjectFilters = Object.freeze({
  /** Every trade subject of one exchange. */
  tradesOf: (ex: string) => `md.trade.${ex}.>`,
});

/** An analytics update (`md.bar.ind.…`) rather than a closed bar: both travel in BARS. */
export function isAnalyticsUpdateSubject(subject: string): boolean {
  return subject.startsWith('md.bar.ind.');
}

/** The roles that register a NATS micro service. */
export type ServiceRole = 'worker' | 'supervisor' | 'gateway';

/** A service instance id as one subject token (no wildcards, no dots). */
function serviceToken(instance: string): string {
  return instance.replace(/[.*> ]/g, '_');
}

/**
 * Micro-service request subjects: `tickmesh.<role>.<endpoint>` is answered by one instance of
 * the role (queue group), `tickmesh.<role>.<instance>.<endpoint>` by that instance only.
 */
export const serviceSubjects = Object.freeze({
  roleGroup: (role: ServiceRole) => `tickmesh.${role}`,
  instanceGroup: (role: ServiceRole, instance: string) => `tickmesh.${role}.${serviceToken(instance)}`,
  role: (role: ServiceRole, endpoint: string) => `tickmesh.${role}.${endpoint}`,
  instance: (role: ServiceRole, instance: string, endpoint: string) =>
    `tickmesh.${role}.${serviceToken(instance)}.${endpoint}`,
});

/** Fixed keys in KV buckets (other buckets are keyed by actor or worker id). */
export const kvKeys = Object.freeze({
  /** The one key of `supervisor-leader`: whoever holds it leads. */
  supervisorLeader: 'leader',
});

function consumerDeleteOf(stream: string): string {
  return `$JS.API.CONSUMER.DELETE.${stream}.>`;
}

/**
 * Subject patterns that NATS permissions name (core/nats-permissions.ts): whole families of
 * tickmesh subjects, the control endpoints of the micro services, and the JetStream API and KV
 * subjects the client library uses underneath.
 */
export const permissionSubjects = Object.freeze({
  everything: '>',
  trades: subjects.tradeAll,
  /** Closed bars and analytics updates (`md.bar.ind.…` is under it). */
  bars: subjects.barAll,
  live: 'md.live.>',
  alerts: subjects.alertAll,
  quality: 'md.quality.>',
  quarantine: 'md.quarantine.>',
  actorEvents: 'sys.actor.>',
  rulesChanged: 'tm.ctl.rules.>',
  /** A control endpoint of a role, asked of the role (queue group) and of one instance. */
  control: (role: ServiceRole, endpoint: string) => [
    serviceSubjects.role(role, endpoint),
    `tickmesh.${role}.*.${endpoint}`,
  ],
  /** Every endpoint of every tickmesh service. */
  services: 'tickmesh.>',
  /** Every endpoint of one role's service (what its instances subscribe to). */
  serviceOf: (role: ServiceRole) => `tickmesh.${role}.>`,
  /** Requests to the JetStream API (info, lookups, consumers, …). */
  jetStreamApi: '$JS.API.>',
  /** What changes a stream's content or shape other than publishing into it. */
  streamAdmin: [
    '$JS.API.STREAM.CREATE.>',
    '$JS.API.STREAM.UPDATE.>',
    '$JS.API.STREAM.DELETE.>',
    '$JS.API.STREAM.PURGE.>',
    '$JS.API.STREAM.MSG.DELETE.>',
  ],
  /**
   * Everything that creates, removes, pauses or reads a consumer of one stream, and its acks
   * (what only the stream's own readers may do: another client pulling from a durable would
   * take its messages away from it).
   */
  consumersOf: (stream: string) => [
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.>`,
    consumerDeleteOf(stream),
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.API.CONSUMER.PAUSE.${stream}.>`,
    `$JS.API.CONSUMER.UNPIN.${stream}.>`,
    `$JS.ACK.${stream}.>`,
  ],
  /** Deleting any consumer of one stream (part of consumersOf). */
  consumerDelete: consumerDeleteOf,
  acks: '$JS.ACK.>',
  /** Replies to an ordered consumer's flow-control messages (KV watches). */
  flowControl: '$JS.FC.>',
  /** Writes (put, delete, purge) to one KV bucket. */
  kvWrites: (bucket: string) => `$KV.${bucket}.>`,
  /** Service discovery (`nats micro ls/info/stats`). */
  serviceDiscovery: '$SRV.>',
});
