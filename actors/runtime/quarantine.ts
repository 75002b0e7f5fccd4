/**
 * The one publisher of quarantine messages (`Quarantined` in the protocol module): rejected
 * input goes to its quarantine subject (kept by the EVENTS stream), is counted in
 * `tickmesh_quarantined_total` and logged once per kind of reason, and never stops the actor.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Clock } from '../../core/clock.ts';
import type { OnceLogger } from '../../core/log.ts';
import { metrics } from '../../core/metrics.ts';
import { encodeJson, type Quarantined, SCHEMA_VERSION, subjects } from '../../core/protocol/index.ts';

/** Longest raw payload kept, so one huge bad frame does not become a huge event. */
const MAX_RAW_PAYLOAD = 4096;

export class Quarantine {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly ex: string,
    private readonly sym: string,
    private readonly source: string,
    private readonly once: OnceLogger,
    private readonly clock: Clock,
  ) {}

  /** Input of one symbol (`md.quarantine.<ex>.<sym>`), rejected by `source` (e.g. `symbol`). */
  static forSymbol(
    nc: NatsConnection,
    ex: string,
    sym: string,
    source: string,
    once: OnceLogger,
    clock: Clock,
  ): Quarantine {
    return new Quarantine(nc, subjects.quarantine(ex, sym), ex, sym, source, once, clock);
  }

  /** BARS messages the bar writer cannot store. */
  static forWriter(nc: NatsConnection, once: OnceLogger, clock: Clock): Quarantine {
    return new Quarantine(nc, subjects.writerQuarantine(), 'writer', 'bars', 'writer', once, clock);
  }

  /** `reason` reads `<kind>: <detail>`; the kind labels the metric and the once-per-kind log. */
  send(reason: string, payload: unknown): void {
    const kind = reason.split(':')[0]!.slice(0, 40);
    metrics.quarantined.inc({ source: this.source, reason: kind });
    this.once.warn(kind, { exchange: this.ex, symbol: this.sym, reason }, 'quarantined input');
    const message: Quarantined = {
      v: SCHEMA_VERSION,
      ex: this.ex,
      sym: this.sym,
      reason,
      source: this.source,
      at: this.clock.now(),
      payload:
        payload instanceof Uint8Array
          ? new TextDecoder().decode(payload.subarray(0, MAX_RAW_PAYLOAD))
          : (payload ?? null),
    };
    this.nc.publish(this.subject, encodeJson(message));
  }
}
