/**
 * Access tokens: short-lived JWTs (HS256, jose) naming the user, the role they had and the
 * user's token_version at issue. The signature and expiry are checked here; graphql/callers.ts
 * then checks the version and reads the role in effect, so a password reset or a disable ends
 * every token at once and a role change applies to the next request.
 */
import { errors, jwtVerify, SignJWT } from 'jose';
import type { Clock } from '../core/clock.ts';
import { ConfigError } from '../core/errors.ts';
import { checkRole, type Role } from '../core/users-store.ts';

const ISSUER = 'tickmesh';
const ALG = 'HS256';

export interface AccessClaims {
  username: string;
  role: Role;
  /** The user's token_version when the token was issued. */
  version: number;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export class AccessTokens {
  private readonly key: Uint8Array;

  constructor(
    secret: string | undefined,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {
    if (!secret || secret.length < 32)
      throw new ConfigError('TICKMESH_JWT_SECRET must be set to at least 32 characters for the gateway');
    this.key = new TextEncoder().encode(secret);
  }

  async issue(username: string, role: Role, version: number): Promise<{ token: string; expiresAt: number }> {
    const now = this.clock.now();
    // Whole seconds, rounded down, so the token never outlives the advertised expiry.
    const expiresAt = Math.floor((now + this.ttlMs) / 1000) * 1000;
    const token = await new SignJWT({ role, ver: version })
      .setProtectedHeader({ alg: ALG })
      .setIssuer(ISSUER)
      .setSubject(username)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expiresAt / 1000)
      .sign(this.key);
    return { token, expiresAt };
  }

  /** The claims of a valid, unexpired token, else null. */
  async verify(token: string): Promise<AccessClaims | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALG],
        issuer: ISSUER,
        currentDate: new Date(this.clock.now()),
        requiredClaims: ['sub', 'exp', 'ver'],
      });
      if (!Number.isSafeInteger(payload.ver)) return null;
      return {
        username: payload.sub!,
        role: checkRole(String(payload.role)),
        version: payload.ver as number,
        expiresAt: payload.exp! * 1000,
      };
    } catch (e) {
      if (e instanceof errors.JOSEError || (e as { code?: string }).code === 'TM_ERR_BAD_ARGUMENT')
        return null;
      throw e;
    }
  }
}
