/**
 * Settings of the gateway's HTTP policy (graphql/http-policy.ts): which Host names it answers to
 * and which other sites' pages may call it from a browser. Part of the configuration
 * (`gateway.http`), so a malformed entry is refused when the gateway starts.
 */
import { z } from 'zod';

/**
 * `name`, `name:port`, `[v6]`, `[v6]:port`, `*.domain` (its subdomains) or `*` (any host: the
 * check is off). A name without a port matches every port.
 */
const HOST_PATTERN =
  /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?|\[[0-9a-f:.]+\](:\d{1,5})?)$/;

const hostPattern = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.string().regex(HOST_PATTERN, 'a host name, name:port, [IPv6]:port, *.domain or *'));

/** An origin as browsers send it: scheme://host[:port], nothing after it. */
const origin = z
  .string()
  .trim()
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === s.toLowerCase();
    } catch {
      return false;
    }
  }, 'an origin: http(s)://host[:port], without a path or a trailing slash')
  .transform((s) => s.toLowerCase());

export const httpConfigSchema = z
  .object({
    /**
     * Host names the gateway answers to besides localhost, 127.0.0.1 and [::1] on its own port
     * (TICKMESH_ALLOWED_HOSTS, comma-separated): the names clients use (service name, ingress).
     * Other Host headers get TM_ERR_BAD_HOST (against DNS rebinding).
     */
    allowedHosts: z.array(hostPattern).default([]),
    /**
     * Origins of other sites whose pages may call the API (TICKMESH_CORS_ORIGINS,
     * comma-separated): CORS on /graphql and the graphql-ws upgrade. Empty: same origin only.
     */
    corsOrigins: z.array(origin).default([]),
  })
  .strict();

export type HttpConfig = z.infer<typeof httpConfigSchema>;

/** A comma-separated environment variable as a list (empty items dropped). */
export function commaList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
