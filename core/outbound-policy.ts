/**
 * Where the system may send outbound requests (alert webhooks and Slack hooks): https only
 * unless allowed, and only to public unicast addresses, unless the operator allow-lists an
 * internal receiver. Checked when a rule is written and again before every delivery, and the
 * delivery connects to the address that was checked (no second DNS lookup, so no rebinding).
 *
 * Every address the host resolves to must pass: a name with one public and one private address
 * is refused. Numeric host forms (`2130706433`, `0x7f.1`, `017700000001`, `[::ffff:7f00:1]`)
 * are normalised by the WHATWG URL parser before the check, IPv4-mapped IPv6 addresses are
 * judged as the IPv4 address they carry, and anything ipaddr.js does not class as plain
 * `unicast` (loopback, RFC 1918, CGNAT, link-local and so cloud metadata, unique-local,
 * multicast, broadcast, reserved, 6to4/Teredo/NAT64 …) is refused.
 *
 * A rule may name a host that does not resolve yet (the gateway's resolver may not be the
 * workers'); deliveries to it are refused until it resolves to an allowed address.
 *
 * Refusals say why in coarse terms only: for a host name, whether it pointed to a private
 * address or to nothing is not told, so rule creation cannot map internal DNS either.
 */
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { OutboundRefusedError } from './errors.ts';

/** "ip", "ip:port" or "[ipv6]:port", as Resolver.setServers takes it. */
function isDnsServer(s: string): boolean {
  const m = /^\[(.+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
  const host = m ? m[1]! : s;
  const port = m?.[2] ? Number(m[2]) : 53;
  return isIP(host) !== 0 && port >= 1 && port <= 65_535;
}

/** An allow-list entry: a host name, an IP address or a CIDR range, optionally only some ports. */
const allowEntrySchema = z
  .object({
    host: z
      .string()
      .min(1)
      .transform((h) => h.toLowerCase().replace(/^\[(.*)\]$/, '$1'))
      .refine((h) => !h.includes('/') || ipaddr.isValidCIDR(h), 'not a valid CIDR range'),
    /** Ports the entry covers; every port when left out. */
    ports: z.array(z.number().int().min(1).max(65_535)).min(1).optional(),
    /** Plain http is allowed to this receiver (it is otherwise https only). */
    http: z.boolean().default(false),
  })
  .strict();

export const webhookPolicySchema = z
  .object({
    /** Plain http to any permitted receiver (off: https only, except allow-listed `http` entries). */
    allowHttp: z.boolean().default(false),
    /** Internal receivers that may be private/loopback addresses (tests use 127.0.0.1). */
    allow: z.array(allowEntrySchema).default([]),
    /**
     * DNS servers ("ip" or "ip:port") used instead of the system resolver (getaddrinfo), e.g. a
     * filtering resolver; /etc/hosts is then not consulted.
     */
    dnsServers: z
      .array(
        z
          .string()
          .refine(isDnsServer, 'use an IP address, optionally with a port ("10.0.0.2:53", "[::1]:53")'),
      )
      .optional(),
    /** Time for the name lookup and for the TCP (and TLS) connection each. */
    connectTimeoutMs: z.number().int().positive().default(3000),
    /** Bytes of a receiver's answer read at most; then the connection is dropped. */
    maxResponseBytes: z.number().int().min(0).default(65_536),
    /** Deliveries in flight at once, and to one receiver (host:port) at once. */
    concurrency: z.number().int().min(1).max(1000).default(16),
    perHostConcurrency: z.number().int().min(1).max(100).default(2),
  })
  .strict();

export type WebhookPolicyConfig = z.infer<typeof webhookPolicySchema>;

/** Resolves a host name to its addresses (all of them, IPv4 and IPv6). */
export type ResolveHost = (hostname: string) => Promise<string[]>;

/** A URL that passed the policy and the one address to connect to for it. */
export interface CheckedTarget {
  url: URL;
  /** The host as written, without IPv6 brackets (for SNI, certificate checks and Host). */
  hostname: string;
  port: number;
  address: string;
  family: 4 | 6;
}

/** Names of metadata services that must never be reached, whatever they resolve to. */
const METADATA_HOSTS = new Set([
  'metadata',
  'metadata.google.internal',
  'instance-data',
  'metadata.azure.com',
]);

/** An address's class after IPv4-mapped unwrapping: `unicast` is public, everything else is refused. */
export function addressClass(address: string): string {
  const ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress())
    return (ip as ipaddr.IPv6).toIPv4Address().range();
  return ip.range();
}

/** True for an address the policy lets through without an allow-list entry. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  return addressClass(address) === 'unicast';
}

const ERRNO_NO_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA', 'ESERVFAIL', 'EAI_AGAIN']);

function systemResolver(): ResolveHost {
  return async (hostname) => {
    try {
      return (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);
    } catch (e) {
      if (ERRNO_NO_NAME.has((e as NodeJS.ErrnoException).code ?? '')) return [];
      throw e;
    }
  };
}

function serverResolver(servers: string[], timeoutMs: number): ResolveHost {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  resolver.setServers(servers);
  const some = (p: Promise<string[]>) =>
    p.catch((e: NodeJS.ErrnoException) => {
      if (ERRNO_NO_NAME.has(e.code ?? '')) return [];
      throw e;
    });
  return async (hostname) => {
    const [v4, v6] = await Promise.all([
      some(resolver.resolve4(hostname)),
      some(resolver.resolve6(hostname)),
    ]);
    return [...v4, ...v6];
  };
}

type AllowEntry = WebhookPolicyConfig['allow'][number];

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OutboundRefusedError('the host name did not resolve in time')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class OutboundPolicy {
  private readonly resolve: ResolveHost;

  constructor(
    private readonly cfg: WebhookPolicyConfig,
    resolve?: ResolveHost,
  ) {
    this.resolve =
      resolve ??
      (cfg.dnsServers?.length ? serverResolver(cfg.dnsServers, cfg.connectTimeoutMs) : systemResolver());
  }

  /**
   * Checks a URL and picks the address to connect to; throws OutboundRefusedError (coarse
   * reason) when the policy refuses it or the host does not resolve.
   */
  async check(raw: string): Promise<CheckedTarget> {
    const target = await this.inspect(raw);
    if (target === 'unresolved') throw this.refusal(false, 'it does not resolve');
    return target;
  }

  /**
   * The check when a rule is written: as `check`, except that a host name that does not
   * resolve (yet) is accepted. Nothing is sent then, and every delivery checks again.
   */
  async admit(raw: string): Promise<void> {
    await this.inspect(raw);
  }

  private async inspect(raw: string): Promise<CheckedTarget | 'unresolved'> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new OutboundRefusedError('not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new OutboundRefusedError('only https (or http where allowed) URLs are accepted');
    const hostname = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    const literal = isIP(hostname) !== 0;
    const covers = (e: AllowEntry) => !e.ports || e.ports.includes(port);
    const named = this.cfg.allow.find((e) => covers(e) && !literal && e.host === hostname);
    if (!named && METADATA_HOSTS.has(hostname.replace(/\.$/, '')))
      throw new OutboundRefusedError('metadata services are not reachable');

    const addresses = literal
      ? [hostname]
      : await withTimeout(this.resolve(hostname), this.cfg.connectTimeoutMs).catch((e) => {
          if (e instanceof OutboundRefusedError) throw e;
          throw new OutboundRefusedError('the host name could not be resolved');
        });
    if (addresses.length === 0) return 'unresolved';

    let httpAllowed = this.cfg.allowHttp || (named?.http ?? false);
    let allHttpEntries = true;
    for (const address of addresses) {
      if (named) continue;
      const entry = this.cfg.allow.find((e) => covers(e) && matchesAddress(e.host, address));
      if (!entry) {
        allHttpEntries = false;
        if (!isPublicAddress(address)) throw this.refusal(literal, `${addressClass(address)} address`);
      } else if (!entry.http) allHttpEntries = false;
    }
    if (!named && allHttpEntries) httpAllowed = true;
    if (url.protocol === 'http:' && !httpAllowed)
      throw new OutboundRefusedError('only https URLs are accepted for this receiver');

    const address = addresses[0]!;
    return { url, hostname, port, address, family: isIP(address) === 6 ? 6 : 4 };
  }

  private refusal(literal: boolean, why: string): OutboundRefusedError {
    // For a literal address, its class tells the caller nothing new; for a name it would.
    return new OutboundRefusedError(
      literal ? `the address is not public (${why})` : 'the host does not resolve to an allowed address',
    );
  }
}

/** Whether an allow-list host (IP or CIDR; names never match an address) covers an address. */
function matchesAddress(host: string, address: string): boolean {
  try {
    const ip = ipaddr.process(address);
    if (host.includes('/')) {
      const [net, bits] = ipaddr.parseCIDR(host);
      const plain = ipaddr.process(net.toString());
      return ip.kind() === plain.kind() && ip.match(plain, bits);
    }
    if (!ipaddr.isValid(host)) return false;
    return ip.toNormalizedString() === ipaddr.process(host).toNormalizedString();
  } catch {
    return false;
  }
}
