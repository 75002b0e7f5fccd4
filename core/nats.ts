/**
 * NATS connection and topology: the streams and KV buckets every role relies on.
 * Creating them is idempotent, so any role may do it at start-up.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { metrics } from './metrics.ts';
import type { NatsPrincipal } from './nats-permissions.ts';
import {
  BUCKETS,
  decodeWith,
  STREAMS,
  subjects,
  type WorkerRecord,
  workerRecordSchema,
} from './protocol/index.ts';

export type { NatsConnection };

/** A NATS user and its password (core/nats-permissions.ts names the users). */
export interface NatsCredential {
  user: string;
  pass: string;
}

export async function connectNats(
  url: string,
  name: string,
  credential?: NatsCredential,
): Promise<NatsConnection> {
  return connect({
    servers: url,
    name,
    ...credential,
    // The async stack traces cost a lot of CPU per request/publish (see DESIGN.md, known traps).
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
  });
}

/**
 * The credential of `principal` from the config (`nats.passwords`), or undefined when none is
 * configured (a server without authorization).
 */
export function natsCredential(cfg: Config, principal: NatsPrincipal): NatsCredential | undefined {
  const pass = cfg.nats.passwords[principal];
  return pass ? { user: principal, pass } : undefined;
}

/** Connects to the configured server as `principal`. */
export function connectAs(cfg: Config, principal: NatsPrincipal, name: string): Promise<NatsConnection> {
  if (!cfg.nats.url) throw new ConfigError('NATS_URL is required for this role');
  return connectNats(cfg.nats.url, name, natsCredential(cfg, principal));
}

/**
 * Whether a JetStream API call failed because the stream or consumer it names does not exist,
 * judged by the server's API error code (10059, 10014), not by the message text.
 */
export function isNotFound(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound)
  );
}

/**
 * The result of a JetStream lookup (`jsm.streams.info`, `jsm.consumers.info`, …), or null when
 * what it names does not exist. Any other failure (a timeout, no JetStream) is thrown.
 */
export async function infoOrNull<T>(lookup: Promise<T>): Promise<T | null> {
  try {
    return await lookup;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * Whether a message on a plain subscription was delivered by a JetStream consumer rather than
 * published to the subject. Anyone who may create a push consumer chooses where it delivers,
 * and the server delivers there with its own rights, whatever the creator may publish: a
 * consumer on a stream whose content a client controls (its own KV writes) could carry that
 * content to a control endpoint or a live subject. Every delivery's reply subject is the
 * consumer's ack subject, which a publisher cannot choose, so receivers that expect direct
 * publishes drop these (and count them).
 */
export function isConsumerDelivery(msg: { reply?: string }, receiver: string): boolean {
  if (!msg.reply?.startsWith('$JS.ACK.')) return false;
  metrics.consumerDeliveriesRefused.inc({ receiver });
  return true;
}

export interface Topology {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: {
    health: KV;
    assign: KV;
    workers: KV;
    leader: KV;
    symbolState: KV;
    featuresLatest: KV;
  };
}

type StreamSpec = Pick<StreamConfig, 'name' | 'subjects' | 'max_age' | 'duplicate_window' | 'num_replicas'>;

function streamSpecs(cfg: Config): StreamSpec[] {
  const replicas = cfg.streams.replicas;
  return [
    {
      name: STREAMS.trades,
      subjects: [subjects.tradeAll],
      max_age: nanos(cfg.streams.tradesMaxAgeMs),
      duplicate_window: nanos(5 * 60_000),
      num_replicas: replicas,
    },
    {
      name: STREAMS.bars,
      subjects: [subjects.barAll],
      max_age: nanos(cfg.streams.barsMaxAgeMs),
      duplicate_window: nanos(10 * 60_000),
      num_replicas: replicas,
    },
    {
      name: STREAMS.events,
      subjects: [...subjects.eventStreamSubjects],
      max_age: nanos(cfg.streams.eventsMaxAgeMs),
      duplicate_window: nanos(2 * 60_000),
      num_replicas: replicas,
    },
  ];
}

async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  const existing = await infoOrNull(jsm.streams.info(spec.name));
  if (!existing) {
    try {
      await jsm.streams.add({
        ...spec,
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
      });
      return;
    } catch (e) {
      // Another process created it between our info() and add(): fall through to update.
      if (!(await infoOrNull(jsm.streams.info(spec.name)))) throw e;
    }
  }
  const cur = (await jsm.streams.info(spec.name)).config;
  const same =
    JSON.stringify([...cur.subjects].sort()) === JSON.stringify([...(spec.subjects ?? [])].sort()) &&
    cur.max_age === spec.max_age &&
    cur.duplicate_window === spec.duplicate_window;
  if (!same) {
    await jsm.streams.update(spec.name, {
      subjects: spec.subjects,
      max_age: spec.max_age,
      duplicate_window: spec.duplicate_window,
    });
  }
}

export async function ensureTopology(nc: NatsConnection, cfg: Config): Promise<Topology> {
  const jsm = await jetstreamManager(nc);
  for (const spec of streamSpecs(cfg)) await ensureStream(jsm, spec);
  const kvm = new Kvm(nc);
  const replicas = cfg.streams.replicas;
  const [health, assign, workers, leader, symbolState, featuresLatest] = await Promise.all([
    kvm.create(BUCKETS.actorHealth, { ttl: cfg.health.ttlMs, history: 1, replicas }),
    kvm.create(BUCKETS.actorAssign, { history: 5, replicas }),
    kvm.create(BUCKETS.workers, { ttl: cfg.health.ttlMs, history: 1, replicas }),
    kvm.create(BUCKETS.supervisorLeader, { ttl: cfg.supervisor.leaseTtlMs, history: 1, replicas }),
    kvm.create(BUCKETS.symbolState, { history: 1, replicas }),
    kvm.create(BUCKETS.featuresLatest, { history: 1, replicas }),
  ]);
  return { nc, js: jetstream(nc), jsm, kv: { health, assign, workers, leader, symbolState, featuresLatest } };
}

/**
 * Keys of a KV bucket from a server-side snapshot (stream info with a subjects filter).
 * nats.js `kv.keys()` walks the bucket with a consumer and, on a bucket being written to
 * (heartbeats), can list a key twice and miss others; this does neither.
 */
export async function listKeys(jsm: JetStreamManager, bucket: string): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {})
    .map((s) => s.slice(prefix.length))
    .sort();
}

/**
 * The workers that can take actors now: a heartbeat younger than `ttlMs` and not draining.
 * Judged from the records' own timestamps, because on NATS 2.9 a key that expires by bucket
 * TTL produces no watch event (a dead worker's record may still be readable for a while).
 */
export async function liveWorkers(topo: Topology, now: number, ttlMs: number): Promise<WorkerRecord[]> {
  const live = new Map<string, WorkerRecord>();
  for (const key of await listKeys(topo.jsm, BUCKETS.workers)) {
    const entry = await topo.kv.workers.get(key);
    if (entry?.operation !== 'PUT') continue;
    const rec = decodeWith(workerRecordSchema, entry.value);
    if (rec.ok && !rec.value.draining && now - rec.value.updatedAt <= ttlMs)
      live.set(rec.value.id, rec.value);
  }
  return [...live.values()].sort((a, b) => a.id.localeCompare(b.id));
}
