/**
 * A forward HTTP proxy on 127.0.0.1 for tests of ccxt's proxy settings: CONNECT tunnels (what
 * undici's ProxyAgent and https-proxy-agent open), plain absolute-URI requests and websocket
 * upgrades (what http-proxy-agent sends for ws:// urls), all counted by target.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';

export interface FakeProxy {
  url: string;
  /** Every target asked for, `host:port`, in order (a tunnel once, a forwarded request each time). */
  readonly targets: string[];
  close(): Promise<void>;
}

export async function startFakeProxy(): Promise<FakeProxy> {
  const targets: string[] = [];
  const server = createServer((req, res) => {
    // A plain forward request: the absolute URI names the origin.
    const target = new URL(req.url ?? '/');
    targets.push(target.host);
    const upstream = request(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  /** Connects to the origin, lets `opened` speak first, then splices the two sockets. */
  const splice = (client: Duplex, host: string, port: number, opened: (upstream: Socket) => void) => {
    targets.push(`${host}:${port}`);
    const upstream = connect(port, host, () => {
      opened(upstream);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  };
  server.on('upgrade', (req, client, head) => {
    // An absolute-URI upgrade: replayed to the origin as an ordinary one.
    const target = new URL(req.url ?? '/');
    splice(client, target.hostname, Number(target.port), (upstream) => {
      const lines = [`${req.method} ${target.pathname}${target.search} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
    });
  });
  server.on('connect', (req, client, head) => {
    const [host = '', port = ''] = (req.url ?? '').split(':');
    splice(client, host, Number(port), (upstream) => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    targets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
