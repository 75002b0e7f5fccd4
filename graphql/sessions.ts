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
  revokeUserRefreshTokens,
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

export class Sessions {
  constructor(
    private readonly pool: Pool,
    private readonly tokens: AccessTokens,
    private readonly refreshTtlMs: number,
  ) {}

  private async session(user: UserRow, refreshToken: string): Promise<Session> {
    const { token, expiresAt } = await this.tokens.issue(user.username, user.role);
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

  async refresh(refreshToken: string): Promise<Session> {
    const r = await rotateRefreshToken(this.pool, refreshToken, this.refreshTtlMs);
    if (!r.ok) throw new UnauthenticatedError(`refresh token ${r.reason}: sign in again`);
    const user = await readUser(this.pool, r.username);
    if (!user) throw new UnauthenticatedError('refresh token unknown: sign in again');
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
    const user = await disableUser(this.pool, username);
    await revokeUserRefreshTokens(this.pool, username);
    return userOut(user);
  }

  async resetPassword(username: string, password: string): Promise<User> {
    const user = await resetPassword(this.pool, username, password);
    await revokeUserRefreshTokens(this.pool, username);
    return userOut(user);
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
  await trail.record(
    {
      ...ctx,
      caller: { username: a.username, role: roleIn(session.user.role), actor: a.username, expiresAt: null },
    },
    { ...attempt, result: 'ok' },
  );
  return session;
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
      refreshSession: gql((a: MutationRefreshSessionArgs) => sessions.refresh(a.refreshToken)),
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
