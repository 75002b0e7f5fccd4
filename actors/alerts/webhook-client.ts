/**
 * One bounded POST to a target the outbound policy checked (core/outbound-policy.ts): the
 * connection goes to the checked address only (the socket's lookup answers with it; TLS still
 * verifies the certificate against the host name, which is also sent as SNI and Host), no
 * redirect is followed (node:http never follows one, and a 3xx is a failure), at most
 * `maxResponseBytes` of the answer are read before the socket is dropped, and the connect and
 * total times are bounded.
 *
 * Failures carry coarse reasons only (DeliveryError): "timeout", "connection failed", "HTTP 503"
 * — never an errno, an address or a port, so `lastError` cannot be used to scan a network.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { DeliveryError } from '../../core/errors.ts';
import type { CheckedTarget } from '../../core/outbound-policy.ts';

export interface PostLimits {
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxResponseBytes: number;
  /** Aborts the request (the actor stops). */
  signal?: AbortSignal | undefined;
}

/** What the caller learns: the status and how many bytes of the answer were read. */
export interface PostResult {
  status: number;
  bytesRead: number;
}

/** A socket lookup that answers with the checked address, whatever the name now resolves to. */
function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as LookupFunction;
}

export function postJson(
  target: CheckedTarget,
  body: string,
  headers: Record<string, string>,
  limits: PostLimits,
): Promise<PostResult> {
  const { url } = target;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: DeliveryError | null, result?: PostResult) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      limits.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(result!);
    };
    const req = client.request({
      method: 'POST',
      hostname: target.hostname,
      port: target.port,
      path: `${url.pathname}${url.search}`,
      headers: {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        host: url.host,
        connection: 'close',
        ...headers,
      },
      agent: false,
      lookup: pinnedLookup(target.address, target.family),
      ...(url.protocol === 'https:' ? { servername: target.hostname } : {}),
    });
    const fail = (reason: string) => {
      finish(new DeliveryError(reason));
      req.destroy();
    };
    const onAbort = () => fail('cancelled');
    limits.signal?.addEventListener('abort', onAbort, { once: true });
    timers.push(setTimeout(() => fail('timeout'), limits.totalTimeoutMs));
    req.on('socket', (socket) => {
      const connectTimer = setTimeout(() => fail('timeout'), limits.connectTimeoutMs);
      timers.push(connectTimer);
      const connected = () => clearTimeout(connectTimer);
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
    });
    req.on('error', () => fail('connection failed'));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        res.destroy();
        return fail(`HTTP ${status} (redirects are not followed)`);
      }
      let bytesRead = 0;
      const done = () => {
        res.destroy();
        req.destroy();
        if (status >= 200 && status < 300) finish(null, { status, bytesRead });
        else fail(`HTTP ${status}`);
      };
      // The answer is read only to let the receiver finish; past the cap the socket is dropped.
      res.on('data', (chunk: Buffer) => {
        bytesRead += chunk.length;
        if (bytesRead >= limits.maxResponseBytes) done();
      });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.end(body);
  });
}
