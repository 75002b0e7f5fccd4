/**
 * Who may do what on NATS: one user per principal (a role process, or a kind of actor inside a
 * worker, each on its own connection) and the least each needs. The server enforces it, so a
 * bug or a stolen credential of one part cannot forge what another part publishes:
 * - only exchange actors publish trades; only symbol actors publish bars, forming bars, alerts;
 * - only the supervisor writes `actor-assign` and the leader lease, and only it (and the
 *   operator) may create or reshape streams (a stream can republish into any subject);
 * - the gateway reads and subscribes; it publishes no market data, only rule-change notices and
 *   the actor-restart request its admin mutation makes;
 * - control endpoints (`restart`, `drain`) answer the operator (and the supervisor, which
 *   forwards a restart to the worker hosting the actor).
 * - consumers of the market-data streams belong to their readers: only symbol actors create,
 *   pull from, ack or delete consumers of TRADES, only the writer of BARS, only the alert
 *   dispatcher of EVENTS, so nobody can drain another's durable. The one exception: the
 *   supervisor deletes (never creates or reads) the TRADES durable of a symbol that is no longer
 *   active, once its actor has stopped (supervisor/consumer-release.ts). KV buckets' streams stay open
 *   to every user's watches; a push consumer can be pointed at any subject, so the receivers of
 *   control requests and live subjects drop consumer deliveries (core/nats.ts
 *   isConsumerDelivery), and deliveries are never stored by another stream.
 * Subscriptions are open to every authenticated user (reading is not what is guarded), except
 * the services' request subjects: only a role's own processes may listen (and so answer) there,
 * so nobody can swallow or spoof an operator's restart.
 */
import { BUCKETS, permissionSubjects as P, type ServiceRole, STREAMS } from './protocol/index.ts';

type StreamName = (typeof STREAMS)[keyof typeof STREAMS];

export const NATS_PRINCIPALS = [
  'operator',
  'supervisor',
  'worker',
  'gateway',
  'exchange',
  'symbol',
  'writer',
  'alerts',
] as const;

export type NatsPrincipal = (typeof NATS_PRINCIPALS)[number];

export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
  /** May answer requests it receives (micro-service replies) without publish rights on inboxes. */
  allowResponses: boolean;
}

const CONTROL_ENDPOINTS = ['restart', 'drain'] as const;
const SERVICE_ROLES: ServiceRole[] = ['worker', 'supervisor', 'gateway'];

/** Every control subject of every service: what only the operator may ask. */
export function controlSubjects(): string[] {
  return SERVICE_ROLES.flatMap((role) => CONTROL_ENDPOINTS.flatMap((e) => P.control(role, e)));
}

/** JetStream as a client: lookups, consumers, acks, KV reads and watches; no stream admin. */
const JETSTREAM_CLIENT = [P.jetStreamApi, P.acks, P.flowControl];

/**
 * `publish`: what it may publish besides using JetStream. `serves`: the role whose micro service
 * it registers (it listens on that role's subjects and on service discovery); actors serve none.
 * `consumes`: the market-data streams whose consumers it owns. `releases`: streams whose
 * consumers it may delete, and nothing else of them.
 */
function grant(
  publish: string[],
  opts: {
    streamAdmin?: boolean;
    serves?: ServiceRole;
    consumes?: StreamName[];
    releases?: StreamName[];
  } = {},
): NatsPermissions {
  const { serves } = opts;
  const deletable = new Set((opts.releases ?? []).map(P.consumerDelete));
  const othersConsumers = Object.values(STREAMS)
    .filter((s) => !opts.consumes?.includes(s))
    .flatMap(P.consumersOf)
    .filter((subject) => !deletable.has(subject));
  return {
    publish: {
      allow: [...JETSTREAM_CLIENT, ...publish],
      deny: [...(opts.streamAdmin ? [] : P.streamAdmin), ...othersConsumers],
    },
    subscribe: {
      allow: [P.everything],
      deny: serves
        ? SERVICE_ROLES.filter((r) => r !== serves).map(P.serviceOf)
        : [P.services, P.serviceDiscovery],
    },
    allowResponses: true,
  };
}

const TABLE: Record<NatsPrincipal, NatsPermissions> = {
  operator: {
    publish: { allow: [P.everything], deny: [] },
    subscribe: { allow: [P.everything], deny: [] },
    allowResponses: true,
  },
  supervisor: grant(
    [
      P.kvWrites(BUCKETS.actorAssign),
      P.kvWrites(BUCKETS.supervisorLeader),
      // It forwards an operator's restart to the one worker that hosts the actor.
      P.control('worker', 'restart')[1]!,
    ],
    { streamAdmin: true, serves: 'supervisor', releases: [STREAMS.trades] },
  ),
  worker: grant([P.kvWrites(BUCKETS.workers), P.kvWrites(BUCKETS.actorHealth), P.actorEvents], {
    serves: 'worker',
  }),
  gateway: grant([P.rulesChanged, P.control('supervisor', 'restart')[0]!], { serves: 'gateway' }),
  exchange: grant([P.trades]),
  symbol: grant(
    [
      P.bars,
      P.live,
      P.alerts,
      P.quality,
      P.quarantine,
      P.kvWrites(BUCKETS.symbolState),
      P.kvWrites(BUCKETS.featuresLatest),
    ],
    { consumes: [STREAMS.trades] },
  ),
  writer: grant([P.quarantine], { consumes: [STREAMS.bars] }),
  alerts: grant([], { consumes: [STREAMS.events] }),
};

export function natsPermissions(principal: NatsPrincipal): NatsPermissions {
  return TABLE[principal];
}
