/**
 * The gateway's HTTP policy against a running gateway (graphql/http-policy.ts): security headers
 * and the CSP, CSRF refusals on /graphql, CORS only for configured origins, the Host allow-list
 * (DNS rebinding) and the Origin check on the graphql-ws upgrade, compressed responses, and
 * /metrics on the metrics port only.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startGatewayRole } from '../launcher/roles.ts';
import { type Api, collect, signIn, wsClient } from './support/graphql.ts';
import { testConfig, testLog } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP request (any Host header, no decompression), unlike fetch. */
function send(
  base: string,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: url.port, path, method: o.method ?? 'GET', headers: o.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

const json = (a: Answer) => JSON.parse(a.body.toString('utf8'));
const codeOf = (a: Answer) => json(a).errors?.[0]?.extensions?.code;

/** Opens a raw WebSocket to /graphql; resolves with 'open' or the refusing HTTP status and body. */
function upgrade(
  base: string,
  headers: Record<string, string>,
): Promise<{ open: true } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
      headers,
      ...(headers.origin ? { origin: headers.origin } : {}),
    });
    ws.on('open', () => {
      ws.close();
      resolve({ open: true });
    });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode!, body });
      });
    });
    ws.on('error', (e) => reject(e));
  });
}

const QUERY = JSON.stringify({ query: '{ __typename }' });

describe('gateway HTTP policy', () => {
  let sys: TestSystem;
  let base: string;
  let port: string;
  let api: Api;
  /** A second gateway on the same system with CORS and extra host names configured. */
  let configured: { url: string; stop(): Promise<void> };

  beforeAll(async () => {
    sys = await startSystem({
      exchange: { id: 'test', symbols: ['AAPL'] },
      roles: ['gateway'],
      // 3,000 closed bars: a candles answer of a few hundred KB.
      beforeRoles: async (pool) => {
        await pool.query(
          `INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume, trades)
           SELECT 'test', 'AAPL', '1m', to_timestamp(1700000000 + i * 60),
                  100 + i, 101 + i, 99 + i, 100.5 + i, 10 + i, 3
             FROM generate_series(1, 3000) AS i`,
        );
      },
    });
    base = sys.base;
    port = new URL(base).port;
    api = await signIn(base);
    configured = await startGatewayRole(
      testConfig(sys.nats, sys.db, {
        gateway: {
          http: {
            allowedHosts: ['dash.example', '*.corp.example'],
            corsOrigins: ['https://app.example'],
          },
        },
      }),
      testLog,
    );
  });

  afterAll(async () => {
    await configured?.stop();
    await sys?.stop();
  });

  const json200 = { 'content-type': 'application/json' };

  it('sends security headers and a CSP the dashboard (and graphql-ws) works under', async () => {
    for (const path of ['/', '/graphql?query=%7B__typename%7D']) {
      const a = await send(base, path, { headers: { host: `localhost:${port}`, 'x-tickmesh-request': '1' } });
      expect(a.status).toBe(200);
      expect(a.headers['x-content-type-options']).toBe('nosniff');
      expect(a.headers['x-frame-options']).toBe('DENY');
      expect(a.headers['referrer-policy']).toBe('no-referrer');
      expect(a.headers['content-security-policy']).toBe(
        "default-src 'self';script-src 'self';style-src 'self' 'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY=';img-src 'self' data:;font-src 'self';" +
          `connect-src 'self' ws://localhost:${port} wss://localhost:${port};object-src 'none';` +
          "base-uri 'none';form-action 'self';frame-ancestors 'none'",
      );
      expect(a.headers['strict-transport-security']).toBeUndefined();
    }
  });

  it('refuses /graphql requests a page of another site could send without a preflight', async () => {
    const post = (headers: Record<string, string>, body = QUERY) =>
      send(base, '/graphql', { method: 'POST', headers: { host: `localhost:${port}`, ...headers }, body });
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded']) {
      const a = await post({ 'content-type': type });
      expect([a.status, codeOf(a)], type).toEqual([400, 'TM_ERR_CSRF']);
      expect(json(a).errors[0].message).toMatch(/needs Content-Type: application\/json/);
    }
    const form = await post(
      { 'content-type': 'multipart/form-data; boundary=b' },
      '--b\r\nContent-Disposition: form-data; name="query"\r\n\r\n{ __typename }\r\n--b--\r\n',
    );
    expect([form.status, codeOf(form)]).toEqual([400, 'TM_ERR_CSRF']);
    expect([(await post({})).status, codeOf(await post({}))]).toEqual([400, 'TM_ERR_CSRF']);

    const get = (headers: Record<string, string>) =>
      send(base, '/graphql?query=%7B__typename%7D', { headers: { host: `localhost:${port}`, ...headers } });
    const bare = await get({});
    expect([bare.status, codeOf(bare)]).toEqual([400, 'TM_ERR_CSRF']);
    expect(json(bare).errors[0].message).toMatch(/X-Tickmesh-Request/);
    // What only a same-origin page or a non-browser client sends passes.
    expect(json(await get({ 'x-tickmesh-request': '1' })).data).toEqual({ __typename: 'Query' });
    expect(json(await get({ authorization: `Bearer ${api.token}` })).data).toEqual({ __typename: 'Query' });
    expect(json(await post(json200)).data).toEqual({ __typename: 'Query' });
  });

  it('answers no CORS by default, and only configured origins when set', async () => {
    const preflight = (b: string, origin: string) =>
      send(b, '/graphql', {
        method: 'OPTIONS',
        headers: {
          host: `localhost:${new URL(b).port}`,
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,authorization',
        },
      });
    const none = await preflight(base, 'https://app.example');
    expect(none.headers['access-control-allow-origin']).toBeUndefined();
    const plain = await send(base, '/graphql', {
      method: 'POST',
      headers: { host: `localhost:${port}`, origin: 'https://app.example', ...json200 },
      body: QUERY,
    });
    expect(plain.headers['access-control-allow-origin']).toBeUndefined();

    const allowed = await preflight(configured.url, 'https://app.example');
    expect(allowed.status).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/authorization/);
    const other = await preflight(configured.url, 'https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers only allowed Host names (DNS rebinding), health checks whatever the Host', async () => {
    for (const host of [
      `evil.example:${port}`,
      'evil.example',
      `localhost:${Number(port) + 1}`,
      'dash.example',
    ]) {
      for (const path of ['/', '/graphql?query=%7B__typename%7D']) {
        const a = await send(base, path, { headers: { host, 'x-tickmesh-request': '1' } });
        expect([a.status, codeOf(a)], `${host}${path}`).toEqual([421, 'TM_ERR_BAD_HOST']);
      }
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])
      expect((await send(base, '/', { headers: { host } })).status, host).toBe(200);
    for (const path of ['/healthz', '/readyz'])
      expect((await send(base, path, { headers: { host: '10.1.2.3:4000' } })).status, path).toBe(200);

    // Configured names: any port unless one is given, `*.domain` for its subdomains.
    for (const host of ['dash.example', 'dash.example:8080', 'a.corp.example:443'])
      expect((await send(configured.url, '/', { headers: { host } })).status, host).toBe(200);
    const refused = await send(configured.url, '/', { headers: { host: 'corp.example' } });
    expect([refused.status, codeOf(refused)]).toEqual([421, 'TM_ERR_BAD_HOST']);
  });

  it('refuses graphql-ws upgrades from another origin or Host, and serves its own', async () => {
    const own = `localhost:${port}`;
    expect(await upgrade(base, { host: own, origin: `http://${own}` })).toEqual({ open: true });
    expect(await upgrade(base, { host: own })).toEqual({ open: true });
    const foreign = await upgrade(base, { host: own, origin: 'http://evil.example' });
    expect(foreign).toMatchObject({ status: 403 });
    expect(JSON.parse((foreign as { body: string }).body).errors[0].extensions.code).toBe(
      'TM_ERR_BAD_ORIGIN',
    );
    // The refused socket is closed by the gateway, even when the client would keep it.
    const raw = connect(Number(port), '127.0.0.1');
    raw.write(
      `GET /graphql HTTP/1.1\r\nHost: ${own}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\n` +
        'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
    );
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      raw.on('data', (c: Buffer) => {
        text += c.toString();
      });
      raw.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1.1 403 /);
    const rebound = await upgrade(base, {
      host: `evil.example:${port}`,
      origin: `http://evil.example:${port}`,
    });
    expect(rebound).toMatchObject({ status: 421 });
    // A configured origin may open one on the configured gateway.
    const cport = new URL(configured.url).port;
    expect(
      await upgrade(configured.url, { host: `localhost:${cport}`, origin: 'https://app.example' }),
    ).toEqual({
      open: true,
    });

    // And graphql-ws itself still connects through the policy and compression (acknowledged).
    let client!: ReturnType<typeof wsClient>;
    const acked = new Promise<void>((resolve) => {
      client = wsClient(api, { on: { connected: () => resolve() } });
    });
    const sub = collect(
      client,
      'subscription { candles(exchange: "test", symbol: "AAPL", timeframe: "1m") { time } }',
    );
    await acked;
    sub.dispose();
    await client.dispose();
  });

  it('compresses /graphql answers and static files', async () => {
    const body = JSON.stringify({
      query:
        '{ candles(exchange: "test", symbol: "AAPL", timeframe: "1m", limit: 3000) { time open high low close volume } }',
    });
    const ask = (encoding?: string) =>
      send(base, '/graphql', {
        method: 'POST',
        headers: {
          host: `localhost:${port}`,
          authorization: `Bearer ${api.token}`,
          ...json200,
          ...(encoding ? { 'accept-encoding': encoding } : {}),
        },
        body,
      });
    const plain = await ask();
    expect(plain.headers['content-encoding']).toBeUndefined();
    const expected = JSON.parse(plain.body.toString('utf8'));
    expect(expected.data.candles).toHaveLength(3000);

    const gz = await ask('gzip');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(gz.body).toString('utf8'))).toEqual(expected);
    expect(gz.body.length).toBeLessThan(plain.body.length / 4);
    const br = await ask('br, gzip');
    expect(br.headers['content-encoding']).toBe('br');
    expect(JSON.parse(brotliDecompressSync(br.body).toString('utf8'))).toEqual(expected);

    // The dashboard's script, compressed as well (and still its own bytes).
    const index = (await send(base, '/', { headers: { host: `localhost:${port}` } })).body.toString('utf8');
    const script = index.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
    expect(script).toBeTruthy();
    const js = await send(base, script!, {
      headers: { host: `localhost:${port}`, 'accept-encoding': 'gzip' },
    });
    expect(js.status).toBe(200);
    expect(js.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(js.body).length).toBeGreaterThan(js.body.length);
  });

  it('serves /metrics on the metrics port, not on the public one', async () => {
    const pub = await send(base, '/metrics', { headers: { host: `localhost:${port}` } });
    expect(pub.status).toBe(404);
    const metrics = await fetch(`${sys.metrics}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^tickmesh_process_resident_memory_bytes /m);
  });
});
