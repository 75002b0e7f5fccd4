/**
 * NATS authorization on a running system (supervisor + worker, server started with the generated
 * users): anonymous clients are refused, each principal publishes only what
 * core/nats-permissions.ts grants it, and an actor restart answers the operator only.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../core/metrics.ts';
import { requestActorRestart } from '../core/micro.ts';
import { connectNats, infoOrNull, type NatsConnection } from '../core/nats.ts';
import type { NatsPrincipal } from '../core/nats-permissions.ts';
import {
  actorIds,
  BUCKETS,
  consumers,
  decodeJson,
  encodeJson,
  SCHEMA_VERSION,
  STREAMS,
  serviceSubjects,
  subjects,
} from '../core/protocol/index.ts';
import { TopicHub } from '../graphql/topic-hub.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'authx';
const SYM = 'BTC/USDT';
/** A symbol no actor runs: whatever lands on its subjects came from the test. */
const FORGED = 'FAKE/USDT';
/** The server's refusal, whichever way the client library reports it (an error or a cause). */
const REFUSED = /Permissions Violation for Publish/;

describe('NATS authorization', () => {
  let sys: TestSystem;
  let topo: Awaited<ReturnType<typeof topology>>;
  const opened: NatsConnection[] = [];

  beforeAll(async () => {
    sys = await startSystem({ exchange: { id: EX, symbols: [SYM] }, roles: ['supervisor', 'worker'] });
    topo = await topology(sys.cfg);
  });

  afterAll(async () => {
    for (const nc of opened) await nc.close().catch(() => {});
    await topo?.[Symbol.asyncDispose]();
    await sys?.stop();
  });

  async function as(principal: NatsPrincipal): Promise<NatsConnection> {
    const nc = await connectNats(sys.nats.url, `test-${principal}`, {
      user: principal,
      pass: sys.nats.passwords[principal],
    });
    opened.push(nc);
    return nc;
  }

  /** Messages a stream holds on one subject. */
  async function storedOn(stream: string, subject: string): Promise<number> {
    const info = await topo.jsm.streams.info(stream, { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  }

  const forgedTrade = () =>
    encodeJson({
      v: SCHEMA_VERSION,
      ex: EX,
      sym: FORGED,
      trades: [{ id: 'x1', ts: Date.now(), px: 1e9, qty: 1, side: 'buy' }],
    });

  it('refuses a client without credentials, and one with a wrong password', async () => {
    await expect(connectNats(sys.nats.url, 'anonymous')).rejects.toThrow(/authorization/i);
    await expect(
      connectNats(sys.nats.url, 'guessing', { user: 'operator', pass: 'not-the-password' }),
    ).rejects.toThrow(/authorization/i);
  });

  it('a symbol actor cannot publish trades: a forged trade never reaches TRADES', async () => {
    const nc = await as('symbol');
    const subject = subjects.trade(EX, FORGED);
    await expect(jetstream(nc).publish(subject, forgedTrade())).rejects.toThrow(REFUSED);
    nc.publish(subject, forgedTrade()); // fire and forget: refused all the same
    await nc.flush();
    expect(await storedOn(STREAMS.trades, subject)).toBe(0);
    // The same message from the exchange actors' user is stored: the refusal is the credential's.
    await jetstream(await as('exchange')).publish(subject, forgedTrade());
    expect(await storedOn(STREAMS.trades, subject)).toBe(1);
  });

  it('the gateway cannot publish bars, forming bars or alerts; the worker host cannot either', async () => {
    for (const principal of ['gateway', 'worker', 'exchange', 'writer', 'alerts'] as const) {
      const nc = await as(principal);
      const bar = subjects.bar('1m', EX, FORGED);
      await expect(jetstream(nc).publish(bar, forgedTrade()), principal).rejects.toThrow(REFUSED);
      await expect(
        jetstream(nc).publish(subjects.alert('some-rule'), forgedTrade()),
        principal,
      ).rejects.toThrow(REFUSED);
    }
    expect(await storedOn(STREAMS.bars, subjects.bar('1m', EX, FORGED))).toBe(0);
    const symbol = await as('symbol');
    await jetstream(symbol).publish(subjects.bar('1m', EX, FORGED), forgedTrade());
    expect(await storedOn(STREAMS.bars, subjects.bar('1m', EX, FORGED))).toBe(1);
  });

  it('only the supervisor writes actor-assign; features and snapshots only the symbol actors', async () => {
    for (const principal of ['worker', 'gateway', 'symbol', 'exchange'] as const) {
      const kv = await new Kvm(await as(principal)).open(BUCKETS.actorAssign);
      await expect(kv.put('exchange.forged', encodeJson({})), principal).rejects.toThrow(REFUSED);
    }
    const features = await new Kvm(await as('gateway')).open(BUCKETS.featuresLatest);
    await expect(features.put('forged', encodeJson({}))).rejects.toThrow(REFUSED);
    expect(await topo.kv.assign.get('exchange.forged')).toBeNull();
  });

  it('no one but the supervisor and the operator creates or removes a stream', async () => {
    for (const principal of ['worker', 'gateway', 'symbol', 'exchange'] as const) {
      const jsm = await jetstreamManager(await as(principal));
      await expect(jsm.streams.add({ name: 'FORGERY', subjects: ['forgery.>'] }), principal).rejects.toThrow(
        REFUSED,
      );
      await expect(jsm.streams.purge(STREAMS.trades), principal).rejects.toThrow(REFUSED);
    }
  });

  it('restarts an actor for the operator (the documented request) and for no other user', async () => {
    const id = actorIds.symbol(EX, SYM);
    const session = async () => {
      const e = await topo.kv.health.get(id);
      const rec = e?.operation === 'PUT' ? decodeJson(e.value) : null;
      return rec?.ok ? (rec.value as { status: string; sessionId: string }) : null;
    };
    const before = await eventually(async () => {
      const s = await session();
      return s?.status === 'running' ? s.sessionId : null;
    }, 'the symbol actor running');
    // Control subjects need the operator's credential (the supervisor forwards to the worker).
    for (const principal of ['worker', 'symbol', 'exchange', 'writer'] as const) {
      const nc = await as(principal);
      await expect(requestActorRestart(nc, id, 2000), principal).rejects.toThrow(REFUSED);
      for (const endpoint of ['restart', 'drain'])
        await expect(
          nc.request(serviceSubjects.role('worker', endpoint), encodeJson({ id }), { timeout: 2000 }),
          `${principal} ${endpoint}`,
        ).rejects.toThrow(REFUSED);
    }
    expect((await session())?.sessionId).toBe(before);
    const answer = await requestActorRestart(await as('operator'), id);
    expect(answer).toMatchObject({ id, restarted: true });
    await eventually(async () => {
      const s = await session();
      return s?.status === 'running' && s.sessionId !== before;
    }, 'the actor running again in a new session');
  });

  it("lets no one but a stream's readers create, pull from or delete its consumers", async () => {
    const symbolDurable = consumers.symbolTrades(EX, SYM);
    await eventually(
      async () => infoOrNull(topo.jsm.consumers.info(STREAMS.trades, symbolDurable)),
      "the symbol actor's durable",
    );
    for (const principal of ['gateway', 'exchange', 'worker', 'writer', 'alerts'] as const) {
      const jsm = await jetstreamManager(await as(principal));
      await expect(jsm.consumers.delete(STREAMS.trades, symbolDurable), principal).rejects.toThrow(REFUSED);
      await expect(
        jsm.consumers.add(STREAMS.trades, { durable_name: 'thief', ack_policy: AckPolicy.Explicit }),
        principal,
      ).rejects.toThrow(REFUSED);
    }
    const symbol = await jetstreamManager(await as('symbol'));
    await expect(symbol.consumers.delete(STREAMS.bars, consumers.barWriter)).rejects.toThrow(REFUSED);
    // The supervisor releases durables of inactive symbols (test/symbols.int.test.ts), nothing more.
    const supervisor = await jetstreamManager(await as('supervisor'));
    await expect(
      supervisor.consumers.add(STREAMS.trades, { durable_name: 'thief', ack_policy: AckPolicy.Explicit }),
    ).rejects.toThrow(REFUSED);
    await expect(supervisor.consumers.delete(STREAMS.bars, consumers.barWriter)).rejects.toThrow(REFUSED);
    expect(await topo.jsm.consumers.info(STREAMS.trades, symbolDurable)).toBeTruthy();
  });

  it('ignores a push consumer pointed at a control endpoint (its content was a KV write)', async () => {
    const id = actorIds.symbol(EX, SYM);
    const running = async () => {
      const e = await topo.kv.health.get(id);
      const rec = e?.operation === 'PUT' ? decodeJson(e.value) : null;
      const v = rec?.ok ? (rec.value as { status: string; sessionId: string }) : null;
      return v?.status === 'running' ? v.sessionId : null;
    };
    const before = await eventually(running, 'the symbol actor running');
    // The worker host may write actor-health and watch its bucket: it writes a restart request
    // there and has the server deliver it to the supervisor's restart endpoint.
    const nc = await as('worker');
    const health = await new Kvm(nc).open(BUCKETS.actorHealth);
    await health.put('forged', encodeJson({ id }));
    const refused = async () =>
      (await metrics.consumerDeliveriesRefused.get()).values.find(
        (v) => v.labels.receiver === 'supervisor.restart',
      )?.value ?? 0;
    const refusedBefore = await refused();
    await jetstreamManager(nc).then((jsm) =>
      jsm.consumers.add(`KV_${BUCKETS.actorHealth}`, {
        deliver_subject: serviceSubjects.role('supervisor', 'restart'),
        deliver_group: 'q', // the micro services' queue group
        filter_subject: `$KV.${BUCKETS.actorHealth}.forged`,
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.Last,
      }),
    );
    await eventually(async () => (await refused()) > refusedBefore, 'the delivery refused');
    expect(await running()).toBe(before);
  });

  it("keeps consumer deliveries out of the gateway's live subscriptions", async () => {
    const hub = new TopicHub(await as('gateway'), 16);
    const live = subjects.live('1m', EX, FORGED);
    const items = hub.subscribe(live, (_subject, data) => ({
      value: new TextDecoder().decode(data),
      coalesceKey: null,
    }));
    // A symbol actor writes a features value and has the server deliver it as a forming bar …
    const symbol = await as('symbol');
    await new Kvm(symbol).open(BUCKETS.featuresLatest).then((kv) => kv.put('forged', encodeJson('forged')));
    await jetstreamManager(symbol).then((jsm) =>
      jsm.consumers.add(`KV_${BUCKETS.featuresLatest}`, {
        deliver_subject: live,
        filter_subject: `$KV.${BUCKETS.featuresLatest}.forged`,
        ack_policy: AckPolicy.None,
      }),
    );
    await eventually(
      async () =>
        (await metrics.consumerDeliveriesRefused.get()).values.some(
          (v) => v.labels.receiver === 'gateway.subscriptions',
        ),
      'the delivery refused',
    );
    // … which the hub drops; what the actor publishes itself comes through.
    symbol.publish(live, encodeJson('published'));
    expect((await items.next()).value).toBe(JSON.stringify('published'));
    hub.close();
  });

  it('lets no other user listen on the control subjects of a role (nobody swallows or spoofs a restart)', async () => {
    for (const principal of ['symbol', 'exchange', 'gateway', 'worker'] as const) {
      const sub = (await as(principal)).subscribe(serviceSubjects.role('supervisor', 'restart'));
      expect(String(await sub.closed), principal).toMatch(/Permissions Violation for Subscription/);
    }
    const supervisor = await as('supervisor');
    const own = supervisor.subscribe(serviceSubjects.role('supervisor', 'restart'));
    await supervisor.flush(); // a refusal would have arrived before the flush's answer
    expect(own.isClosed()).toBe(false);
    own.unsubscribe();
  });

  it('lets the worker host and actors of each kind do their own work (bars come out of trades)', async () => {
    // Trades from the exchange actors' user flow through the symbol actor (its own user) into BARS.
    const start = Date.now() - 10 * 60_000;
    await publishTrades(jetstream(await as('exchange')), EX, SYM, syntheticTrades({ start, count: 200 }));
    await eventually(
      async () => (await storedOn(STREAMS.bars, subjects.bar('1m', EX, SYM))) > 0,
      'closed bars of the trades',
    );
  });
});
