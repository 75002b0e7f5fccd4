/**
 * The gateway's HTTP policy, one plugin in front of every route:
 * - security headers (helmet): a Content-Security-Policy the dashboard runs under (its own
 *   scripts and styles only, graphql-ws to this host), nosniff, no framing, no referrer;
 * - a Host allow-list (against DNS rebinding: a page of another site whose name resolves to
 *   127.0.0.1 still sends its own name as Host) → 421 TM_ERR_BAD_HOST; health checks are
 *   exempt (kubelet probes send the pod IP);
 * - CSRF: /graphql refuses what a browser sends cross-site without a CORS preflight (a POST with
 *   a form or text content type, a GET without a header a page cannot add freely) → 400
 *   TM_ERR_CSRF; graphql-ws upgrades must come from this host or an allowed origin → 403
 *   TM_ERR_BAD_ORIGIN;
 * - CORS only for configured origins; responses compressed (br/gzip) above 1 KB.
 * The checks are pure functions of the request, so the graphql-ws upgrade handler can use them
 * too (`upgradeRefusal`).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import compress from '@fastify/compress';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import {
  CsrfRefusedError,
  HostNotAllowedError,
  OriginNotAllowedError,
  shownInput,
  type TmError,
} from '../core/errors.ts';
import type { HttpConfig } from '../core/http-config.ts';

interface HostRule {
  /** Lower case, IPv6 in brackets; for a `*.domain` rule the domain. */
  name: string;
  /** null: any port. */
  port: number | null;
  subdomains: boolean;
}

export interface HttpPolicy {
  /** `*` in the allow-list: every Host is answered. */
  anyHost: boolean;
  hosts: readonly HostRule[];
  /** Origins of other sites allowed to call the API from a browser (CORS and graphql-ws). */
  corsOrigins: ReadonlySet<string>;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
/** Paths answered whatever the Host: probes address the pod or container by IP. */
const HOST_EXEMPT_PATHS = new Set(['/healthz', '/readyz']);
/** Content types a cross-site form or fetch may send without a preflight (Fetch standard). */
const SIMPLE_CONTENT_TYPES = new Set([
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
]);
/**
 * The one inline stylesheet the dashboard needs: lightweight-charts' attribution logo (its
 * `<style>`, a constant of the library). A unit test recomputes it from the installed library.
 */
export const CHART_LOGO_STYLE_HASH = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='";
/** A header a page of another site cannot add without a CORS preflight. */
export const REQUEST_HEADER = 'x-tickmesh-request';

/**
 * The policy of a gateway listening on `port`: localhost, 127.0.0.1 and [::1] on that port, plus
 * the configured names.
 */
export function httpPolicy(cfg: HttpConfig, port: number): HttpPolicy {
  const hosts: HostRule[] = LOOPBACK_NAMES.map((name) => ({ name, port, subdomains: false }));
  let anyHost = false;
  for (const entry of cfg.allowedHosts) {
    if (entry === '*') {
      anyHost = true;
      continue;
    }
    const subdomains = entry.startsWith('*.');
    const parsed = parseHost(subdomains ? entry.slice(2) : entry);
    if (parsed) hosts.push({ ...parsed, subdomains });
  }
  return { anyHost, hosts, corsOrigins: new Set(cfg.corsOrigins) };
}

/** A Host header as name (lower case, no trailing dot) and port; null when malformed. */
export function parseHost(host: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+?)\.?(?::(\d{1,5}))?$/.exec(host.trim().toLowerCase());
  if (!m?.[1]) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && port > 65535) return null;
  return { name: m[1], port };
}

function ruleMatches(rule: HostRule, name: string, port: number | null): boolean {
  const nameOk = rule.subdomains ? name.endsWith(`.${rule.name}`) : name === rule.name;
  if (!nameOk) return false;
  if (rule.port === null) return true;
  // No port in Host: the scheme's default (a proxy in front on 80 or 443).
  return port === null ? rule.port === 80 || rule.port === 443 : port === rule.port;
}

/** Whether the gateway answers to this Host header. */
export function hostAllowed(host: string | undefined, policy: HttpPolicy): boolean {
  if (policy.anyHost) return true;
  const parsed = host ? parseHost(host) : null;
  if (!parsed) return false;
  return policy.hosts.some((rule) => ruleMatches(rule, parsed.name, parsed.port));
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Whether a request with this Origin may use the API: no Origin (not a browser), the page's own
 * host (same name and port as Host), or an allowed origin.
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  policy: HttpPolicy,
): boolean {
  if (origin === undefined) return true;
  if (policy.corsOrigins.has(origin.toLowerCase())) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // `null` (sandboxed frames, file:) and garbage
  }
  const defaultPort = DEFAULT_PORTS[url.protocol];
  const own = host ? parseHost(host) : null;
  if (defaultPort === undefined || !own) return false;
  const originPort = url.port === '' ? defaultPort : Number(url.port);
  return url.hostname === own.name && originPort === (own.port ?? defaultPort);
}

/**
 * Why a WebSocket upgrade must be refused (a Host not allowed, an Origin of another site), or
 * null when it may proceed.
 */
export function upgradeRefusal(req: IncomingMessage, policy: HttpPolicy): TmError | null {
  const { host, origin } = req.headers;
  if (!hostAllowed(host, policy)) return new HostNotAllowedError(host);
  if (!originAllowed(origin, host, policy)) return originRefused(origin);
  return null;
}

function originRefused(origin: string | undefined): OriginNotAllowedError {
  return new OriginNotAllowedError(
    `a WebSocket from origin ${shownInput(origin ?? '')} is not allowed: add it to TICKMESH_CORS_ORIGINS`,
  );
}

function mediaType(headers: IncomingHttpHeaders): string {
  return (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Why a /graphql request must be refused as a possible cross-site request forgery, or null.
 * A POST needs a content type forms cannot send (application/json); a GET needs a header a page
 * cannot add without a preflight (Authorization, X-Tickmesh-Request, or a JSON content type).
 * WebSocket upgrades are judged by their Origin instead (browsers add no headers to them).
 */
export function csrfRefusal(method: string, headers: IncomingHttpHeaders): string | null {
  if (headers.upgrade?.toLowerCase() === 'websocket') return null;
  const type = mediaType(headers);
  if (method === 'POST' && (type === '' || SIMPLE_CONTENT_TYPES.has(type)))
    return `POST /graphql needs Content-Type: application/json (got ${shownInput(type || 'none')})`;
  if (
    (method === 'GET' || method === 'HEAD') &&
    headers.authorization === undefined &&
    headers[REQUEST_HEADER] === undefined &&
    (type === '' || SIMPLE_CONTENT_TYPES.has(type))
  )
    return 'GET /graphql needs an Authorization or X-Tickmesh-Request header (or use POST with application/json)';
  return null;
}

/** The graphql-ws endpoints of the page's own host, for connect-src ('self' does not cover ws: everywhere). */
function sameHostSockets(req: IncomingMessage): string {
  const parsed = req.headers.host ? parseHost(req.headers.host) : null;
  if (!parsed) return '';
  const host = parsed.port === null ? parsed.name : `${parsed.name}:${parsed.port}`;
  return `ws://${host} wss://${host}`;
}

function refuse(reply: FastifyReply, error: TmError): FastifyReply {
  const socket = reply.request.raw.socket;
  if (reply.request.headers.upgrade) {
    // A refused upgrade keeps no socket: the WebSocket plugin's own clean-up never saw it.
    reply.header('connection', 'close');
    reply.raw.once('finish', () => {
      socket.once('finish', () => socket.destroy());
      socket.end();
    });
  }
  return reply
    .code(error.status)
    .header('cache-control', 'no-store')
    .send({ errors: [{ message: error.message, extensions: { code: error.code } }] });
}

/** The policy as a fastify plugin (not encapsulated: it covers every route of the gateway). */
export const httpPolicyPlugin = (cfg: { port: number; http: HttpConfig }): FastifyPluginAsync => {
  const fn: FastifyPluginAsync = async (app) => {
    await app.register(helmet, {
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'", CHART_LOGO_STYLE_HASH],
          imgSrc: ["'self'", 'data:'],
          fontSrc: ["'self'"],
          connectSrc: ["'self'", (req) => sameHostSockets(req as IncomingMessage)],
          objectSrc: ["'none'"],
          baseUri: ["'none'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
        },
      },
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      // TLS ends in front of the gateway (ingress, proxy): HSTS belongs there.
      strictTransportSecurity: false,
    });
    // One policy per listening port (a gateway on port 0 learns it from the first request).
    const policies = new Map<number, HttpPolicy>();
    const policyOf = (localPort: number | undefined) => {
      const port = cfg.port || localPort || 0;
      const known = policies.get(port);
      if (known) return known;
      const made = httpPolicy(cfg.http, port);
      policies.set(port, made);
      return made;
    };
    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?', 1)[0]!;
      if (HOST_EXEMPT_PATHS.has(path)) return;
      const policy = policyOf(req.raw.socket?.localPort);
      const { host, origin } = req.headers;
      if (!hostAllowed(host, policy)) return refuse(reply, new HostNotAllowedError(host));
      if (req.headers.upgrade?.toLowerCase() === 'websocket' && !originAllowed(origin, host, policy))
        return refuse(reply, originRefused(origin));
      if (path === '/graphql') {
        const csrf = csrfRefusal(req.method, req.headers);
        if (csrf) return refuse(reply, new CsrfRefusedError(csrf));
      }
    });
    if (cfg.http.corsOrigins.length > 0)
      await app.register(cors, {
        origin: [...cfg.http.corsOrigins],
        methods: ['GET', 'POST'],
        allowedHeaders: ['content-type', 'authorization', REQUEST_HEADER],
        maxAge: 600,
      });
    // Responses only: request bodies stay uncompressed (no decompression bombs).
    await app.register(compress, { global: true, globalDecompression: false, threshold: 1024 });
  };
  Object.assign(fn, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'tickmesh-http-policy',
    [Symbol.for('plugin-meta')]: { name: 'tickmesh-http-policy', fastify: '5.x' },
  });
  return fn;
};
