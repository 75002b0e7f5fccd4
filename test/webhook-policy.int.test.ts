/**
 * Alert webhooks under abuse, end to end: rules written as a trader over GraphQL, firings
 * published to EVENTS, deliveries made by the real dispatcher to real receivers on loopback.
 * Names resolve through a small DNS server of the test (alerts.webhooks.dnsServers), so a name
 * can point at a public address when a rule is written and at a loopback address when it is
 * delivered. Receivers live on 127.0.0.2 (allow-listed for http, as an internal receiver) and
 * 127.0.0.3 (not allow-listed: nothing may ever reach it).
 *
 * What is proven: every attack address of the issue is refused when a rule is written; a name
 * re-pointed at loopback after the rule was written is refused at delivery and the loopback
 * receiver sees no connection; the connection goes to the address that was checked even when
 * DNS changes right after the check; a redirect is a failed attempt and its target gets
 * nothing; a 400 MB answer is cut after ~64 KB without the process's memory growing; a silent
 * receiver holds only its own per-host slots while another rule is delivered; lastError is a
 * coarse reason.
 */
import dgram from 'node:dgram';
import { on, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, msgIds, subjects } from '../core/protocol/index.ts';
import { createUser } from '../core/users-store.ts';
import { type Api, gql, signIn } from './support/graphql.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

const EX = 'test';
const SYM = 'HOOK';
const INTERNAL = '127.0.0.2';
const FORBIDDEN = '127.0.0.3';
const PUBLIC = '93.184.216.34';
const SECRET = 'a-webhook-secret-of-some-length';

// ------------------------------------------------------------------ DNS server

/** Answers A/AAAA queries from a table the test changes; `afterAnswer` runs after each A answer. */
async function dnsServer() {
  const table = new Map<string, { a: string[]; aaaa: string[]; afterAnswer?: () => void }>();
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const query = dnsPacket.decode(msg);
    const q = query.questions?.[0];
    const entry = q ? table.get(q.name.toLowerCase()) : undefined;
    const data = !entry || !q ? [] : q.type === 'A' ? entry.a : q.type === 'AAAA' ? entry.aaaa : [];
    const answers = data.map((address) => ({
      type: q!.type as 'A' | 'AAAA',
      class: 'IN' as const,
      name: q!.name,
      ttl: 0,
      data: address,
    }));
    socket.send(
      dnsPacket.encode({
        type: 'response',
        id: query.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: query.questions,
        answers,
      }),
      rinfo.port,
      rinfo.address,
    );
    if (q?.type === 'A') entry?.afterAnswer?.();
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const set = (name: string, a: string[], aaaa: string[] = [], afterAnswer?: () => void) =>
    table.set(name, { a, aaaa, afterAnswer });
  return { server: `127.0.0.1:${socket.address().port}`, set, close: () => socket.close() };
}

// ------------------------------------------------------------------ receivers

interface Received {
  path: string;
  eventId: string;
}

/** An HTTP receiver on `host` (port 0 = any); `answer` writes the response. */
async function receiver(
  host: string,
  answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok'),
  port = 0,
) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const eventId = (JSON.parse(body) as { event: { id: string } }).event.id;
      received.push({ path: req.url ?? '', eventId });
      server.emit('received', eventId);
      answer(req, res);
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    server,
    received,
    port: (server.address() as net.AddressInfo).port,
    url: (path: string) => `http://${host}:${(server.address() as net.AddressInfo).port}${path}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A TCP listener that counts connections and never answers (a forbidden or a silent receiver). */
async function tcpSink(host: string, port = 0) {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.once('data', () => server.emit('request', s));
    s.on('error', () => {});
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    open: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

// ------------------------------------------------------------------ the system

describe('webhook outbound policy', () => {
  let sys: TestSystem;
  let dns: Awaited<ReturnType<typeof dnsServer>>;
  let trader: Api;
  let seq = 0;
  const cleanup: (() => void)[] = [];

  beforeAll(async () => {
    dns = await dnsServer();
    sys = await startSystem({
      exchange: { id: EX, symbols: [SYM] },
      config: {
        alerts: {
          backoffMs: 20,
          maxBackoffMs: 50,
          pollMs: 50,
          maxAttempts: 2,
          // Long enough that waiting for a silent receiver would outlast every test below.
          timeoutMs: 120_000,
          webhooks: {
            dnsServers: [dns.server],
            allow: [{ host: INTERNAL, http: true }],
            connectTimeoutMs: 2000,
            perHostConcurrency: 2,
          },
        },
      },
    });
    await createUser(sys.db.pool, 'tina', 'tina password', 'trader');
    trader = await signIn(sys.base, 'tina', 'tina password');
  });

  afterAll(async () => {
    for (const c of cleanup) c();
    await sys?.stop();
    dns?.close();
  });

  const createRule = (webhookUrl: string, extra: Record<string, unknown> = {}) =>
    gql<{ createAlertRule: { id: string } }>(
      trader,
      'mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id } }',
      {
        i: {
          exchange: EX,
          symbol: SYM,
          condition: 'PRICE_ABOVE',
          threshold: 1,
          webhook: { url: webhookUrl, secret: SECRET },
          ...extra,
        },
      },
    );

  const ruleFor = async (webhookUrl: string) => {
    const r = await createRule(webhookUrl);
    expect(r.errors).toBeUndefined();
    return r.data!.createAlertRule.id;
  };

  /** Publishes a firing of the rule (as a symbol actor would); returns its id. */
  const fire = async (ruleId: string) => {
    const n = ++seq;
    const barT = Date.UTC(2024, 0, 1) + n * 60_000;
    const firing = {
      v: 1,
      id: `${ruleId}:1m:${barT}:1`,
      ruleId,
      exchange: EX,
      symbol: SYM,
      timeframe: '1m',
      condition: 'PRICE_ABOVE',
      threshold: 1,
      value: 100,
      barT,
      closed: true,
      at: barT + 59_000,
      seq: n,
      final: false,
    };
    await using topo = await topology(sys.cfg);
    await topo.js.publish(subjects.alert(ruleId), encodeJson(firing), { msgID: msgIds.alert(firing.id) });
    return firing.id;
  };

  const delivery = async (eventId: string) =>
    (
      await sys.db.pool.query<{ status: string; attempts: number; last_error: string | null }>(
        'SELECT status, attempts, last_error FROM alert_deliveries WHERE event_id = $1',
        [eventId],
      )
    ).rows[0];

  const settled = (eventId: string, what: string) =>
    eventually(async () => {
      const d = await delivery(eventId);
      return d && d.status !== 'pending' ? d : null;
    }, what);

  it('refuses every attack address when a trader writes a rule, and stores nothing', async () => {
    dns.set('loopback.hooks.test', ['127.0.0.1']);
    dns.set('metadata.hooks.test', ['169.254.169.254']);
    dns.set('mixed.hooks.test', [PUBLIC, '10.0.0.7']);
    dns.set('v6.hooks.test', [], ['fd00::1']);
    dns.set('mapped.hooks.test', [], ['::ffff:127.0.0.1']);
    dns.set('public.hooks.test', [PUBLIC]);
    const attacks = [
      'https://127.0.0.1/',
      'https://2130706433/',
      'https://0x7f.1/',
      'https://017700000001/',
      'https://127.1/',
      'https://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/',
      'https://172.16.5.4/',
      'https://192.168.1.1/',
      'https://100.64.0.1/',
      'https://0.0.0.0/',
      'https://255.255.255.255/',
      'https://[::1]/',
      'https://[::]/',
      'https://[fd00::1]/',
      'https://[fe80::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://[::ffff:169.254.169.254]/',
      'https://loopback.hooks.test/',
      'https://metadata.hooks.test/',
      'https://mixed.hooks.test/',
      'https://v6.hooks.test/',
      'https://mapped.hooks.test/',
      'https://metadata.google.internal/',
      // A public host, but plain http is not allowed to it.
      'http://public.hooks.test/',
    ];
    for (const url of attacks) {
      const r = await createRule(url);
      expect({ url, code: r.errors?.[0]?.extensions?.code }).toEqual({
        url,
        code: 'TM_ERR_OUTBOUND_REFUSED',
      });
      expect(r.errors?.[0]?.message).toMatch(/^input\.webhook\.url: outbound address refused: /);
    }
    const slack = await createRule('https://public.hooks.test/', { slackUrl: 'https://127.0.0.1/' });
    expect(slack.errors?.[0]?.extensions?.code).toBe('TM_ERR_OUTBOUND_REFUSED');
    expect(slack.errors?.[0]?.message).toMatch(/^input\.slackUrl: /);
    // Updating a good rule to an attack address is refused as well.
    const id = await ruleFor('https://public.hooks.test/x');
    const upd = await gql(
      trader,
      'mutation($id: String!, $i: AlertRuleInput!) { updateAlertRule(id: $id, input: $i) { id } }',
      {
        id,
        i: {
          exchange: EX,
          symbol: SYM,
          condition: 'PRICE_ABOVE',
          threshold: 1,
          webhook: { url: 'https://[::1]/', secret: SECRET },
        },
      },
    );
    expect(upd.errors?.[0]?.extensions?.code).toBe('TM_ERR_OUTBOUND_REFUSED');
    const { rows } = await sys.db.pool.query<{ url: string }>(
      `SELECT channels->'webhook'->>'url' AS url FROM alert_rules`,
    );
    expect(rows).toEqual([{ url: 'https://public.hooks.test/x' }]);
  });

  it('delivers to an allow-listed internal http receiver, signed', async () => {
    const ok = await receiver(INTERNAL);
    cleanup.push(ok.close);
    const ruleId = await ruleFor(ok.url('/ok'));
    const eventId = await fire(ruleId);
    expect(await settled(eventId, 'delivered')).toEqual({
      status: 'delivered',
      attempts: 1,
      last_error: null,
    });
    expect(ok.received).toEqual([{ path: '/ok', eventId }]);
  });

  it('refuses a delivery when the name was re-pointed at loopback after the rule was written', async () => {
    const forbidden = await tcpSink(FORBIDDEN);
    cleanup.push(forbidden.close);
    dns.set('rebind.hooks.test', [PUBLIC]);
    const ruleId = await ruleFor(`https://rebind.hooks.test:${forbidden.port}/x`);
    dns.set('rebind.hooks.test', [FORBIDDEN]);
    const eventId = await fire(ruleId);
    expect(await settled(eventId, 'refused')).toEqual({
      status: 'failed',
      attempts: 2,
      last_error: 'refused by policy',
    });
    expect(forbidden.connections()).toBe(0);
  });

  it('connects to the address that was checked, even when DNS changes right after the check', async () => {
    const checked = await receiver(INTERNAL);
    cleanup.push(checked.close);
    const other = await tcpSink(FORBIDDEN, checked.port);
    cleanup.push(other.close);
    dns.set('pinned.hooks.test', [INTERNAL]);
    const ruleId = await ruleFor(`http://pinned.hooks.test:${checked.port}/pinned`);
    // From the next answer on, the name points at the forbidden receiver.
    dns.set('pinned.hooks.test', [INTERNAL], [], () => dns.set('pinned.hooks.test', [FORBIDDEN]));
    const eventId = await fire(ruleId);
    expect(await settled(eventId, 'delivered')).toMatchObject({ status: 'delivered', attempts: 1 });
    expect(checked.received).toEqual([{ path: '/pinned', eventId }]);
    expect(other.connections()).toBe(0);
  });

  it('does not follow a redirect: one request per attempt, nothing to the target', async () => {
    const target = await receiver(INTERNAL);
    cleanup.push(target.close);
    const redirecting = await receiver(INTERNAL, (_req, res) => {
      res.writeHead(307, { location: target.url('/stolen') });
      res.end();
    });
    cleanup.push(redirecting.close);
    const ruleId = await ruleFor(redirecting.url('/hook'));
    const eventId = await fire(ruleId);
    expect(await settled(eventId, 'failed')).toEqual({
      status: 'failed',
      attempts: 2,
      last_error: 'HTTP 307 (redirects are not followed)',
    });
    expect(redirecting.received).toHaveLength(2);
    expect(target.received).toEqual([]);
  });

  it('reads at most ~64 KB of a 400 MB answer, then drops the connection, with flat memory', async () => {
    const TOTAL = 400 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    let dropped: () => void;
    const closed = new Promise<void>((r) => {
      dropped = r;
    });
    const flood = await receiver(INTERNAL, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(TOTAL) });
      res.on('close', () => dropped());
      const pump = () => {
        while (sent < TOTAL && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    cleanup.push(flood.close);
    const ruleId = await ruleFor(flood.url('/flood'));
    const rssBefore = process.memoryUsage().rss;
    const eventId = await fire(ruleId);
    await closed;
    expect(await settled(eventId, 'delivered')).toEqual({
      status: 'delivered',
      attempts: 1,
      last_error: null,
    });
    const grown = process.memoryUsage().rss - rssBefore;
    // The client stopped reading: what was sent is the cap plus the sockets' buffers, far from 400 MB.
    expect(sent).toBeLessThan(32 * 1024 * 1024);
    expect(grown).toBeLessThan(100 * 1024 * 1024);
  });

  it('keeps a silent receiver to its own per-host slots while another rule is delivered', async () => {
    const silent = await tcpSink(INTERNAL);
    cleanup.push(silent.close);
    const ok = await receiver(INTERNAL);
    cleanup.push(ok.close);
    const silentRule = await ruleFor(`http://${INTERNAL}:${silent.port}/silent`);
    const okRule = await ruleFor(ok.url('/ok'));
    const held = (async () => {
      let requests = 0;
      for await (const _ of on(silent.server, 'request')) if (++requests === 2) return;
    })();
    const silentEvents = [await fire(silentRule), await fire(silentRule), await fire(silentRule)];
    await held;
    // Two attempts hang on the silent receiver (its per-host limit), the third waits its turn.
    const okEvent = await fire(okRule);
    await once(ok.server, 'received');
    expect(await settled(okEvent, 'delivered')).toMatchObject({ status: 'delivered', attempts: 1 });
    expect(silent.connections()).toBe(2);
    expect(silent.open()).toBe(2);
    for (const id of silentEvents)
      expect(await delivery(id)).toMatchObject({ status: 'pending', attempts: 0 });
    // The silent receiver goes away: its deliveries fail with a coarse reason.
    silent.close();
    for (const id of silentEvents)
      expect(await settled(id, 'silent receiver gone')).toEqual({
        status: 'failed',
        attempts: 2,
        last_error: 'connection failed',
      });
  });
});
