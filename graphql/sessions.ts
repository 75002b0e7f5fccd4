/**
 * Sessions and identities over GraphQL: login, refresh (single use, rotated), logout, `me`, and
 * the admin's users and API keys. Every failed credential is the same TM_ERR_UNAUTHENTICATED,
 * so a caller learns nothing about which part was wrong.
 */
import { createApiKey, listApiKeys, revokeApiKey } from '../core/api-keys-store.ts';
import { readAudit } from '../core/audit-store.ts';
import { type Clock, sleep } from '../core/clock.ts';
import type { Pool } from '../core/db.ts';
import { type TmError, UnauthenticatedError } from '../core/errors.ts';
import {
  issueRefreshToken,
  refreshTokenOwner,
  revokeRefreshFamily,
  rotateRefreshToken,
} from '../core/refresh-tokens-store.ts';
import {
  createUser,
  disableUser,
  listUsers,
  type Role,
  readUser,
  resetPassword,
  setUserRole,
  type UserRow,
  verifyLogin,
} from '../core/users-store.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { AuditTrail } from './audit-trail.ts';
import type { AuthContext, Caller } from './callers.ts';
import { checkLimit, parseTime } from './candles.ts';
import { gql } from './coded.ts';
import type {
  ApiKey,
  MutationCreateApiKeyArgs,
  MutationCreateUserArgs,
  MutationDisableUserArgs,
  MutationLoginArgs,
  MutationLogoutArgs,
  MutationRefreshSessionArgs,
  MutationResetPasswordArgs,
  MutationRevokeApiKeyArgs,
  MutationSetUserRoleArgs,
  NewApiKey,
  QueryAuditLogArgs,
  Role as RoleOut,
  Session,
  User,
} from './generated/schema-types.ts';
import type { LoginGuard } from './login-guard.ts';

export const roleOut = (role: Role): RoleOut => role.toUpperCase() as RoleOut;
export const roleIn = (role: RoleOut): Role => role.toLowerCase() as Role;

export function userOut(u: UserRow): User {
  return {
    username: u.username,
    role: roleOut(u.role),
    createdAt: u.createdAt.toISOString(),
    disabled: !!u.disabledAt,
  };
}

/** A refresh refused: the reason (`reused` hints at a stolen token) and the token's owner. */
interface Refused {
  refused: string;
  username: string | null;
}

export class Sessions {
  constructor(
    private readonly pool: Pool,
    private readonly tokens: AccessTokens,
    private readonly refreshTtlMs: number,
  ) {}

  private async session(user: UserRow, refreshToken: string): Promise<Session> {
    const { token, expiresAt } = await this.tokens.issue(user.username, user.role, user.tokenVersion);
    return {
      accessToken: token,
      expiresAt: new Date(expiresAt).toISOString(),
      refreshToken,
      user: userOut(user),
    };
  }

  /** The session of a good password, else null (the caller counts the failure). */
  async login(username: string, password: string): Promise<Session | null> {
    const user = await verifyLogin(this.pool, username, password);
    if (!user) return null;
    return this.session(user, await issueRefreshToken(this.pool, user.username, this.refreshTtlMs));
  }

  /** The next session, or why not (and whose token it was, when known). */
  async refresh(refreshToken: string): Promise<Session | Refused> {
    const r = await rotateRefreshToken(this.pool, refreshToken, this.refreshTtlMs);
    if (!r.ok) return { refused: r.reason, username: r.username ?? null };
    const user = await readUser(this.pool, r.username);
    if (!user) return { refused: 'unknown', username: null };
    return this.session(user, r.token);
  }

  /** Ends the refresh token's family, if it is the caller's own (admins may end any). */
  async logout(caller: Caller, refreshToken: string): Promise<boolean> {
    const owner = await refreshTokenOwner(this.pool, refreshToken);
    if (!owner || (owner !== caller.username && caller.role !== 'admin')) return false;
    return revokeRefreshFamily(this.pool, refreshToken);
  }

  async me(caller: Caller): Promise<User> {
    const user = await readUser(this.pool, caller.username);
    if (!user) throw new UnauthenticatedError('the signed-in user no longer exists');
    // The role in effect is the credential's (a key may carry less than its owner).
    return { ...userOut(user), role: roleOut(caller.role) };
  }

  // -------------------------------------------------------------- admin: users and keys

  async users(): Promise<User[]> {
    return (await listUsers(this.pool)).map(userOut);
  }

  async createUser(username: string, password: string, role: RoleOut): Promise<User> {
    return userOut(await createUser(this.pool, username, password, roleIn(role)));
  }

  async setUserRole(username: string, role: RoleOut): Promise<User> {
    return userOut(await setUserRole(this.pool, username, roleIn(role)));
  }

  async disableUser(username: string): Promise<User> {
    return userOut(await disableUser(this.pool, username));
  }

  async resetPassword(username: string, password: string): Promise<User> {
    return userOut(await resetPassword(this.pool, username, password));
  }

  async createApiKey(caller: Caller, name: string, role: RoleOut): Promise<NewApiKey> {
    const { key, row } = await createApiKey(this.pool, caller.username, name, roleIn(role));
    return { id: row.id, key, name: row.name, role: roleOut(row.role) };
  }

  async apiKeys(): Promise<ApiKey[]> {
    return (await listApiKeys(this.pool, null)).map((k) => ({
      id: k.id,
      name: k.name,
      role: roleOut(k.role),
      owner: k.owner,
      createdAt: k.createdAt.toISOString(),
      revoked: !!k.revokedAt,
    }));
  }

  revokeApiKey(id: string): Promise<boolean> {
    return revokeApiKey(this.pool, id, null);
  }
}

/** The caller, or TM_ERR_UNAUTHENTICATED (for resolvers that act on someone's behalf). */
export function callerOf(ctx: AuthContext): Caller {
  if (!ctx.caller) throw new UnauthenticatedError();
  return ctx.caller;
}

/** What login needs besides the sessions: lock-outs, the audit trail and the clock it delays on. */
export interface SessionServices {
  guard: LoginGuard;
  trail: AuditTrail;
  clock: Clock;
}

/**
 * Login: refused while locked out; a failure is counted, recorded and answered late; a success
 * clears the user's count. Every attempt is in the audit log, the password never.
 */
async function guardedLogin(
  sessions: Sessions,
  { guard, trail, clock }: SessionServices,
  a: MutationLoginArgs,
  ctx: AuthContext,
): Promise<Session> {
  const address = ctx.address ?? 'unknown';
  const attempt = { operation: 'login', arguments: { username: a.username } };
  try {
    await guard.check(a.username, address);
  } catch (e) {
    await trail.record(ctx, { ...attempt, actor: null, result: (e as TmError).code });
    throw e;
  }
  const session = await sessions.login(a.username, a.password);
  if (!session) {
    const delay = await guard.failed(a.username, address);
    await trail.record(ctx, { ...attempt, actor: null, result: 'TM_ERR_UNAUTHENTICATED' });
    await sleep(clock, delay);
    throw new UnauthenticatedError('wrong username or password');
  }
  await guard.succeeded(a.username);
  await trail.record(signedInAs(ctx, session), { ...attempt, result: 'ok' });
  return session;
}

/** The context of a caller who just got `session` (for the audit entry of login and refresh). */
function signedInAs(ctx: AuthContext, session: Session): AuthContext {
  const { username, role } = session.user;
  return { ...ctx, caller: { username, role: roleIn(role), actor: username, expiresAt: null } };
}

/**
 * Refresh: works without an access token, so it records itself: the token's owner when known,
 * and why a refusal happened (a `reused` token means two parties held it).
 */
async function auditedRefresh(
  sessions: Sessions,
  trail: AuditTrail,
  a: MutationRefreshSessionArgs,
  ctx: AuthContext,
): Promise<Session> {
  const r = await sessions.refresh(a.refreshToken);
  if ('refused' in r) {
    await trail.record(ctx, {
      operation: 'refreshSession',
      arguments: { reason: r.refused },
      actor: r.username,
      result: 'TM_ERR_UNAUTHENTICATED',
    });
    throw new UnauthenticatedError(`refresh token ${r.refused}: sign in again`);
  }
  await trail.record(signedInAs(ctx, r), { operation: 'refreshSession', arguments: {}, result: 'ok' });
  return r;
}

/** Resolvers of sessions, users, API keys and the audit log (the role table guards them). */
export function sessionResolvers(sessions: Sessions, pool: Pool, services: SessionServices) {
  return {
    Query: {
      me: gql((_a: unknown, ctx) => sessions.me(callerOf(ctx))),
      users: gql(() => sessions.users()),
      apiKeys: gql(() => sessions.apiKeys()),
      auditLog: gql(async (a: QueryAuditLogArgs) => {
        const rows = await readAudit(pool, {
          from: a.from ? new Date(parseTime('from', a.from)!) : null,
          to: a.to ? new Date(parseTime('to', a.to)!) : null,
          limit: checkLimit(a.limit, 100, 1000),
        });
        return rows.map((r) => ({
          ...r,
          at: r.at.toISOString(),
          role: r.role ? roleOut(r.role as Role) : null,
        }));
      }),
    },
    Mutation: {
      login: gql((a: MutationLoginArgs, ctx) => guardedLogin(sessions, services, a, ctx)),
      refreshSession: gql((a: MutationRefreshSessionArgs, ctx) =>
        auditedRefresh(sessions, services.trail, a, ctx),
      ),
      logout: gql((a: MutationLogoutArgs, ctx) => sessions.logout(callerOf(ctx), a.refreshToken)),
      createUser: gql((a: MutationCreateUserArgs) => sessions.createUser(a.username, a.password, a.role)),
      setUserRole: gql((a: MutationSetUserRoleArgs) => sessions.setUserRole(a.username, a.role)),
      disableUser: gql((a: MutationDisableUserArgs) => sessions.disableUser(a.username)),
      resetPassword: gql((a: MutationResetPasswordArgs) => sessions.resetPassword(a.username, a.password)),
      createApiKey: gql((a: MutationCreateApiKeyArgs, ctx) =>
        sessions.createApiKey(callerOf(ctx), a.name, a.role),
      ),
      revokeApiKey: gql((a: MutationRevokeApiKeyArgs) => sessions.revokeApiKey(a.id)),
    },
  };
}
