/**
 * Wiring of the graphql-ws side of the gateway: the subscription schema with its resolvers, the
 * fan-out (shared or per-subscriber execution, config gateway.ws.sharedExecution), the server on
 * the gateway's HTTP server, and what a NATS reconnect does (refill every topic's latest closed
 * bar from BARS, so no subscriber keeps a stale or missing bar).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import type { NatsConnection, Topology } from '../core/nats.ts';
import { closedSubjectOf, STREAMS } from '../core/protocol/index.ts';
import { ownerScope } from './analytics.ts';
import type { Callers } from './callers.ts';
import type { CredentialWatch } from './credential-watch.ts';
import { Fanout } from './fanout.ts';
import type { Refill, TopicHub } from './topic-hub.ts';
import { type SubscriptionResolver, subscriptionSchema } from './ws-documents.ts';
import { GraphqlWsServer, type UpgradeRefusal } from './ws-server.ts';

/** The latest closed bar of a candles topic (`md.*.<tf>.<ex>.<sym>` → `md.bar.<tf>.<ex>.<sym>`). */
export function barRefill(topo: Topology): Refill {
  return async (subject) => {
    const closed = closedSubjectOf(subject);
    if (!closed) return null;
    const m = await topo.jsm.streams.getMessage(STREAMS.bars, { last_by_subj: closed });
    return m ? { subject: m.subject, data: m.data } : null;
  };
}

export interface WsGatewayDeps {
  cfg: Config;
  sdl: string;
  subscriptions: Record<string, SubscriptionResolver>;
  callers: Callers;
  watch: CredentialWatch;
  clock: Clock;
  log: Logger;
  server: Server;
  checkUpgrade?: (req: IncomingMessage) => UpgradeRefusal | null;
  chargeSubscribe?: (principalKey: string) => Promise<number | null>;
}

export function startWsGateway(d: WsGatewayDeps): { server: GraphqlWsServer; fanout: Fanout } {
  const schema = subscriptionSchema(d.sdl, d.subscriptions);
  const fanout = new Fanout(schema, d.cfg.gateway.ws.sharedExecution, d.log);
  const server = new GraphqlWsServer({
    cfg: d.cfg.gateway.ws,
    schema,
    fanout,
    callers: d.callers,
    watch: d.watch,
    clock: d.clock,
    log: d.log,
    // A trader sees only their own rules' firings, an admin all: one execution per owner.
    scopeOf: (field, caller) => (field === 'alerts' ? `owner:${ownerScope(caller) ?? '*'}` : ''),
    checkUpgrade: d.checkUpgrade,
    chargeSubscribe: d.chargeSubscribe,
  });
  server.attach(d.server);
  return { server, fanout };
}

/** After every NATS reconnect, re-sends each topic's latest closed bar (a gap may have lost it). */
export async function refillOnReconnect(nc: NatsConnection, hub: TopicHub, log: Logger): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type !== 'reconnect') continue;
    const n = await hub.refill();
    log.info({ topics: hub.topicCount, refilled: n }, 'NATS reconnected: refilled the latest closed bars');
  }
}
