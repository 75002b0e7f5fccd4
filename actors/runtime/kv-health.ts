import type { KV } from '@nats-io/kv';
import { type ActorHealth, encodeJson } from '../../core/protocol/index.ts';
import type { HealthSink } from './cell.ts';

/** Health records in the `actor-health` bucket; the bucket TTL expires a dead actor's key. */
export class KvHealthSink implements HealthSink {
  constructor(private readonly kv: KV) {}

  async write(record: ActorHealth): Promise<void> {
    await this.kv.put(record.id, encodeJson(record));
  }

  async remove(id: string): Promise<void> {
    await this.kv.delete(id);
  }
}
