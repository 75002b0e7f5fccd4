/**
 * `tickmesh inspect`: what `nats stream ls`, `nats consumer ls`, `nats kv ls` and
 * `nats micro ls` show, for machines without the NATS CLI. Read-only.
 */

import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm } from '@nats-io/services';
import { listKeys } from '../core/nats.ts';
import { BUCKETS, decodeJson } from '../core/protocol/index.ts';

export interface Inspection {
  streams: { name: string; subjects: string[]; messages: number; bytes: number; consumers: number }[];
  consumers: Record<string, { name: string; pending: number; ackPending: number; delivered: number }[]>;
  buckets: Record<string, { key: string; value: unknown }[]>;
  services: {
    name: string;
    id: string;
    version: string;
    metadata: Record<string, string>;
    endpoints: string[];
  }[];
}

export async function inspect(nc: NatsConnection): Promise<Inspection> {
  const jsm = await jetstreamManager(nc);
  const out: Inspection = { streams: [], consumers: {}, buckets: {}, services: [] };
  for await (const si of jsm.streams.list()) {
    out.streams.push({
      name: si.config.name,
      subjects: si.config.subjects ?? [],
      messages: si.state.messages,
      bytes: si.state.bytes,
      consumers: si.state.consumer_count,
    });
    if (si.config.name.startsWith('KV_')) continue;
    const list = [];
    for await (const ci of jsm.consumers.list(si.config.name)) {
      list.push({
        name: ci.name,
        pending: ci.num_pending,
        ackPending: ci.num_ack_pending,
        delivered: ci.delivered.stream_seq,
      });
    }
    out.consumers[si.config.name] = list;
  }
  const kvm = new Kvm(nc);
  for (const bucket of [
    BUCKETS.actorHealth,
    BUCKETS.actorAssign,
    BUCKETS.workers,
    BUCKETS.supervisorLeader,
  ]) {
    const kv = await kvm.open(bucket);
    const rows = [];
    for (const key of await listKeys(jsm, bucket)) {
      const e = await kv.get(key);
      if (e?.operation !== 'PUT') continue;
      const parsed = decodeJson(e.value);
      rows.push({ key, value: parsed.ok ? parsed.value : null });
    }
    out.buckets[bucket] = rows.sort((a, b) => a.key.localeCompare(b.key));
  }
  const infos = await new Svcm(nc).client().info();
  for await (const info of infos) {
    out.services.push({
      name: info.name,
      id: info.id,
      version: info.version,
      metadata: info.metadata ?? {},
      endpoints: info.endpoints.map((e) => e.subject),
    });
  }
  out.services.sort((a, b) => a.name.localeCompare(b.name));
  return out;
}

export function formatInspection(i: Inspection): string {
  const lines: string[] = ['Streams:'];
  for (const s of i.streams)
    lines.push(`  ${s.name.padEnd(24)} ${String(s.messages).padStart(9)} msgs  ${s.subjects.join(' ')}`);
  for (const [stream, list] of Object.entries(i.consumers)) {
    lines.push(`Consumers of ${stream}:`);
    for (const c of list)
      lines.push(
        `  ${c.name.padEnd(32)} pending ${c.pending}  ack-pending ${c.ackPending}  at seq ${c.delivered}`,
      );
  }
  for (const [bucket, rows] of Object.entries(i.buckets)) {
    lines.push(`KV ${bucket}:`);
    for (const r of rows) {
      const v = r.value as Record<string, unknown> | null;
      const brief = v
        ? ['status', 'worker', 'id', 'processed', 'restarts']
            .filter((k) => k in v)
            .map((k) => `${k}=${String(v[k])}`)
            .join(' ')
        : '';
      lines.push(`  ${r.key.padEnd(32)} ${brief}`);
    }
  }
  lines.push('Micro services:');
  for (const s of i.services)
    lines.push(
      `  ${s.name.padEnd(22)} ${s.id}  ${s.version}  role=${s.metadata.role ?? '?'} host=${s.metadata.host ?? '?'}  ${s.endpoints.length} endpoints`,
    );
  return lines.join('\n');
}
