/**
 * Every role watches its NATS connection: disconnects, reconnects, slow-consumer and server
 * errors are logged and counted (tickmesh_nats_connection_events_total{role,type}); permission
 * refusals are logged with what was refused. `onReconnect` lets a role restore what a gap may
 * have lost (the gateway refills its subscriptions' latest bars).
 */
import { type NatsConnection, PermissionViolationError } from '@nats-io/nats-core';
import type { Logger } from './log.ts';
import { metrics } from './metrics.ts';

/** Event types not worth a log line (client pings, cluster updates). */
const QUIET = new Set(['ping', 'update']);

export async function watchNatsStatus(
  nc: NatsConnection,
  role: string,
  log: Logger,
  onReconnect?: () => void,
): Promise<void> {
  for await (const s of nc.status()) {
    if (QUIET.has(s.type)) continue;
    metrics.natsConnectionEvents.inc({ role, type: s.type });
    switch (s.type) {
      case 'error':
        if (s.error instanceof PermissionViolationError)
          log.warn(
            { role, operation: s.error.operation, subject: s.error.subject },
            'NATS refused an operation',
          );
        else log.warn({ role, err: s.error }, 'NATS server error');
        break;
      case 'disconnect':
        log.warn({ role, server: s.server }, 'NATS disconnected; reconnecting');
        break;
      case 'reconnect':
        log.warn({ role, server: s.server }, 'NATS reconnected');
        onReconnect?.();
        break;
      case 'slowConsumer':
        log.warn({ role, subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
        break;
      case 'reconnecting':
        log.debug({ role }, 'NATS reconnecting');
        break;
      default:
        log.info({ role, type: s.type }, 'NATS connection status');
    }
  }
}
