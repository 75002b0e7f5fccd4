/**
 * The bounded POST against local servers on loopback: the connection goes to the pinned
 * address while Host names the URL's host, a redirect is a failure, the answer is read up to
 * the cap, and silent or absent receivers fail with coarse reasons (no address, no errno).
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckedTarget } from '../../core/outbound-policy.ts';
import { type PostLimits, postJson } from './webhook-client.ts';

const servers: (Server | net.Server)[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close();
  }
});

async function listen<T extends Server | net.Server>(server: T): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** A target as the policy would return it: a name, and the loopback address it was checked at. */
const target = (port: number, host = 'hooks.example.test'): CheckedTarget => ({
  url: new URL(`http://${host}:${port}/hook?x=1`),
  hostname: host,
  port,
  address: '127.0.0.1',
  family: 4,
});

const limits: PostLimits = { connectTimeoutMs: 1000, totalTimeoutMs: 2000, maxResponseBytes: 65_536 };

const httpServer = (handler: RequestListener) => createServer(handler);

describe('webhook client', () => {
  it('connects to the checked address, with Host and path of the URL', async () => {
    const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const port = await listen(
      httpServer((req, res) => {
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          seen.push({ url: req.url ?? '', headers: req.headers, body });
          res.end('ok');
        });
      }),
    );
    // The name does not resolve anywhere: only the pinned address can have been used.
    const r = await postJson(target(port), '{"a":1}', { 'x-extra': 'y' }, limits);
    expect(r).toEqual({ status: 200, bytesRead: 2 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ url: '/hook?x=1', body: '{"a":1}' });
    expect(seen[0]!.headers).toMatchObject({
      host: `hooks.example.test:${port}`,
      'content-type': 'application/json',
      'x-extra': 'y',
    });
  });

  it('fails on a redirect without following it', async () => {
    let requests = 0;
    const port = await listen(
      httpServer((_req, res) => {
        requests++;
        res.writeHead(302, { location: '/elsewhere' }).end();
      }),
    );
    await expect(postJson(target(port), '{}', {}, limits)).rejects.toThrow(
      /^HTTP 302 \(redirects are not followed\)$/,
    );
    expect(requests).toBe(1);
  });

  it('fails on an error status with only the status in the reason', async () => {
    const port = await listen(httpServer((_req, res) => res.writeHead(503).end('busy')));
    await expect(postJson(target(port), '{}', {}, limits)).rejects.toThrow(/^HTTP 503$/);
  });

  it('reads no more than the cap of a long answer and drops the connection', async () => {
    let closed = false;
    const port = await listen(
      httpServer((_req, res) => {
        res.writeHead(200);
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const pump = () => {
          while (!res.destroyed) if (!res.write(chunk)) return void res.once('drain', pump);
        };
        res.on('close', () => {
          closed = true;
        });
        pump();
      }),
    );
    const r = await postJson(target(port), '{}', {}, { ...limits, maxResponseBytes: 32 * 1024 });
    expect(r.status).toBe(200);
    expect(r.bytesRead).toBeGreaterThanOrEqual(32 * 1024);
    expect(r.bytesRead).toBeLessThanOrEqual(32 * 1024 + 64 * 1024);
    await expect.poll(() => closed).toBe(true);
  });

  it('gives up on a receiver that never answers, and on one that is not there, coarsely', async () => {
    const port = await listen(net.createServer(() => {}));
    await expect(postJson(target(port), '{}', {}, { ...limits, totalTimeoutMs: 200 })).rejects.toThrow(
      /^timeout$/,
    );
    const closedPort = await listen(net.createServer());
    servers.pop()!.close();
    await expect(postJson(target(closedPort), '{}', {}, limits)).rejects.toThrow(/^connection failed$/);
  });

  it('stops when cancelled', async () => {
    const port = await listen(net.createServer(() => {}));
    const ac = new AbortController();
    const p = postJson(target(port), '{}', {}, { ...limits, signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toThrow(/^cancelled$/);
  });
});
