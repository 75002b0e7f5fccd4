import type { NatsConnection } from '@nats-io/nats-core';
import type { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import { encodeJson, SCHEMA_VERSION, subjects } from '../../core/protocol/index.ts';

/** Sends rejected input to md.quarantine.<ex>.<sym> (kept by the EVENTS stream), counted and logged once per reason. */
export class Quarantine {
  count = 0;
  private readonly subject: string;

  constructor(
    private readonly nc: NatsConnection,
    private readonly ex: string,
    private readonly sym: string,
    private readonly source: string,
    private readonly once: OnceLogger,
  ) {
    this.subject = subjects.quarantine(ex, sym);
  }

  send(reason: string, payload: unknown): void {
    this.count++;
    const kind = reason.split(':')[0]!.slice(0, 40);
    metrics.quarantined.inc({ source: this.source, reason: kind });
    this.once.warn(kind, { exchange: this.ex, symbol: this.sym, reason }, 'quarantined input');
    const body =
      payload instanceof Uint8Array ? new TextDecoder().decode(payload.subarray(0, 4096)) : (payload ?? null);
    this.nc.publish(
      this.subject,
      encodeJson({
        v: SCHEMA_VERSION,
        ex: this.ex,
        sym: this.sym,
        reason,
        source: this.source,
        at: Date.now(),
        payload: body,
      }),
    );
  }
}
