/**
 * Registers a process as a NATS micro service (visible to `nats micro ls/info/stats`).
 * Endpoints live under `tickmesh.<role>` (one instance answers, queue group) and
 * `tickmesh.<role>.<instance>` (that instance only), so an operator can ask the role or one process.
 */
import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/nats-core';
import { type Service, type ServiceMsg, Svcm } from '@nats-io/services';
import { RemoteError } from './errors.ts';
import type { Logger } from './log.ts';
import { isConsumerDelivery } from './nats.ts';
import { decodeJson, encodeJson, type ServiceRole, serviceSubjects } from './protocol/index.ts';

export const VERSION = '0.1.0';

export type EndpointHandler = (request: unknown) => Promise<unknown> | unknown;

export interface MicroServiceOptions {
  name: string;
  role: ServiceRole;
  instance: string;
  description: string;
  endpoints: Record<string, EndpointHandler>;
  log: Logger;
}

export async function registerMicroService(nc: NatsConnection, opts: MicroServiceOptions): Promise<Service> {
  const svc = await new Svcm(nc).add({
    name: opts.name,
    version: VERSION,
    description: opts.description,
    metadata: {
      role: opts.role,
      host: hostname(),
      instance: opts.instance,
      version: VERSION,
      pid: String(process.pid),
    },
  });
  const shared = svc.addGroup(serviceSubjects.roleGroup(opts.role));
  const own = svc.addGroup(serviceSubjects.instanceGroup(opts.role, opts.instance));
  for (const [name, handler] of Object.entries(opts.endpoints)) {
    const respond = (err: Error | null, msg: ServiceMsg) => {
      if (err) return;
      if (isConsumerDelivery(msg, `${opts.role}.${name}`)) {
        opts.log.warn(
          { endpoint: name, subject: msg.subject },
          'ignored a JetStream consumer delivery sent to a control endpoint',
        );
        return;
      }
      const req = msg.data.length ? decodeJson(msg.data) : { ok: true as const, value: {} };
      if (!req.ok) {
        msg.respondError(400, req.error);
        return;
      }
      Promise.resolve()
        .then(() => handler(req.value))
        .then(
          (result) => msg.respond(encodeJson(result)),
          (e: Error) => {
            opts.log.warn({ err: e, endpoint: name }, 'micro endpoint failed');
            msg.respondError(500, e.message);
          },
        );
    };
    shared.addEndpoint(name, { handler: respond, metadata: { scope: 'role' } });
    own.addEndpoint(name, { handler: respond, metadata: { scope: 'instance' } });
  }
  return svc;
}

/** The header a micro service sets on an error reply (respondError). */
const SERVICE_ERROR = 'Nats-Service-Error';

/**
 * Asks the supervisors to restart one actor, as `nats request tickmesh.supervisor.restart` does
 * (the operator's credential, or the gateway's for its admin mutation). Resolves to the hosting
 * worker's answer; a refusal by the server (permissions), no responder, or a service error throws.
 */
export async function requestActorRestart(
  nc: NatsConnection,
  id: string,
  timeoutMs = 15_000,
): Promise<unknown> {
  const reply = await nc.request(serviceSubjects.role('supervisor', 'restart'), encodeJson({ id }), {
    timeout: timeoutMs,
  });
  const failed = reply.headers?.get(SERVICE_ERROR);
  if (failed) throw new RemoteError('supervisor', failed);
  const parsed = decodeJson(reply.data);
  if (!parsed.ok) throw new RemoteError('supervisor', parsed.error);
  return parsed.value;
}
