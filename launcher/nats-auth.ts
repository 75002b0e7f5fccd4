/**
 * NATS authorization as server configuration: one user per principal with the permissions of
 * core/nats-permissions.ts. Dev and tests get a file with random passwords in the server's data
 * folder (mode 600, kept across restarts); docker compose and Kubernetes get the same users with
 * passwords taken from the environment (`$NATS_PASSWORD_<PRINCIPAL>`, from a Secret), so no
 * secret lives in a file of the repository or an image. The syntax is what nats-server 2.9 and
 * 2.10/2.11 both read.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { natsPasswordVariable } from '../core/config.ts';
import { NATS_PRINCIPALS, type NatsPrincipal, natsPermissions } from '../core/nats-permissions.ts';

export type NatsPasswords = Record<NatsPrincipal, string>;

/** How a user's password appears in the config: a literal, or a reference to a variable. */
type PasswordSource = (principal: NatsPrincipal) => string;

const quoted = (s: string) => JSON.stringify(s);
const list = (items: string[]) => `[${items.map(quoted).join(', ')}]`;

function userBlock(principal: NatsPrincipal, password: string): string {
  const p = natsPermissions(principal);
  const deny = (d: string[]) => (d.length ? `, deny: ${list(d)}` : '');
  return [
    '    {',
    `      user: ${quoted(principal)}`,
    `      password: ${password}`,
    '      permissions: {',
    `        publish: { allow: ${list(p.publish.allow)}${deny(p.publish.deny)} }`,
    `        subscribe: { allow: ${list(p.subscribe.allow)}${deny(p.subscribe.deny)} }`,
    ...(p.allowResponses ? ['        allow_responses: true'] : []),
    '      }',
    '    }',
  ].join('\n');
}

/** The `authorization` block: every principal, no anonymous access (no users, no entry). */
export function renderAuthorization(password: PasswordSource): string {
  return [
    '# Generated from core/nats-permissions.ts by launcher/nats-auth.ts (`npm run codegen`): edit those, not this.',
    'authorization {',
    '  users = [',
    NATS_PRINCIPALS.map((p) => userBlock(p, password(p))).join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}

/** Where compose and the Kubernetes overlays keep the server's users (a copy each). */
export const SHIPPED_AUTH_DIRS = ['deploy/nats', 'k8s/overlays/dev', 'k8s/overlays/prod'];

/** For compose and Kubernetes: each password from the server's environment. */
export function authorizationFromEnvironment(): string {
  return renderAuthorization((p) => `$${natsPasswordVariable(p)}`);
}

const PASSWORDS_FILE = 'credentials.json';
const CONFIG_FILE = 'nats-server.conf';

function isPasswords(v: unknown): v is NatsPasswords {
  return (
    typeof v === 'object' &&
    v !== null &&
    NATS_PRINCIPALS.every((p) => typeof (v as Record<string, unknown>)[p] === 'string')
  );
}

/** The passwords kept in `dir`, made (random, mode 600) when missing or incomplete. */
export function ensurePasswords(dir: string): NatsPasswords {
  const file = join(dir, PASSWORDS_FILE);
  if (existsSync(file)) {
    const kept: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (isPasswords(kept)) return kept;
  }
  const fresh = Object.fromEntries(
    NATS_PRINCIPALS.map((p) => [p, randomBytes(18).toString('base64url')]),
  ) as NatsPasswords;
  writeFileSync(file, `${JSON.stringify(fresh, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return fresh;
}

/** Writes the server's config (authorization with literal passwords, mode 600); its path. */
export function writeServerConfig(dir: string, passwords: NatsPasswords): string {
  const file = join(dir, CONFIG_FILE);
  writeFileSync(
    file,
    renderAuthorization((p) => quoted(passwords[p])),
    { mode: 0o600 },
  );
  chmodSync(file, 0o600);
  return file;
}
