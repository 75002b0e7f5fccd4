/**
 * Who is asking: the `Authorization: Bearer …` value (HTTP header, or the graphql-ws
 * connection_init payload) resolved to a caller. An API key (`tmk_…`) is looked up on every
 * request, so a revoked one stops working at once; anything else must be a valid access token
 * whose user is enabled and whose sessions were not ended since (token_version), and the role in
 * effect is the user's now. Open graphql-ws sockets are re-checked on every credential change
 * (graphql/credential-watch.ts).
 */
import { API_KEY_PREFIX, findApiKey } from '../core/api-keys-store.ts';
import type { Pool } from '../core/db.ts';
import { currentRole, type Role } from '../core/users-store.ts';
import type { AccessTokens } from './access-tokens.ts';

export interface Caller {
  username: string;
  role: Role;
  /** `apikey:<id>` for a key, else the username: what the audit log records. */
  actor: string;
  /** When the credential stops working (epoch ms); null for API keys (until revoked). */
  expiresAt: number | null;
}

/** What every resolver gets besides its arguments. */
export interface AuthContext {
  caller: Caller | null;
  address: string | null;
}

export function bearerOf(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return m ? m[1]! : null;
}

export class Callers {
  constructor(
    private readonly pool: Pool,
    private readonly tokens: AccessTokens,
  ) {}

  /** The caller the header value names, or null when it names nobody valid. */
  async fromAuthorization(value: unknown): Promise<Caller | null> {
    const credential = bearerOf(value);
    if (!credential) return null;
    if (credential.startsWith(`${API_KEY_PREFIX}_`)) {
      const key = await findApiKey(this.pool, credential);
      return key ? { username: key.owner, role: key.role, actor: `apikey:${key.id}`, expiresAt: null } : null;
    }
    const claims = await this.tokens.verify(credential);
    if (!claims) return null;
    const role = await currentRole(this.pool, claims.username, claims.version);
    return role
      ? { username: claims.username, role, actor: claims.username, expiresAt: claims.expiresAt }
      : null;
  }
}

// Every resolver's context carries the caller (set by graphql/auth.ts for HTTP and graphql-ws).
declare module 'mercurius' {
  interface MercuriusContext extends AuthContext {}
}
