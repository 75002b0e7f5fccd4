/**
 * Authentication and authorization at the GraphQL doors, before any resolver runs:
 * - HTTP: the `Authorization` header becomes the request context's caller; the role table is
 *   checked in mercurius' preExecution hook, so a refused request executes nothing and answers
 *   401 (no valid credential) or 403 (a role that may not).
 * - graphql-ws (graphql/ws-server.ts): the connection_init payload's `authorization` is checked;
 *   without a valid one the socket is closed with 4401 before connection_ack, so no data flows. A socket
 *   is closed with 4401 when its access token expires (on the injected clock) or its credential
 *   is revoked, and with 4403 when its role changes (graphql/credential-watch.ts); the client
 *   refreshes and reconnects. Subscriptions pass the same role table (`refusal`) before they start.
 */
import type { FastifyInstance } from 'fastify';
import { type DocumentNode, Kind, type OperationDefinitionNode } from 'graphql';
import mercurius from 'mercurius';
import type WebSocket from 'ws';
import type { Clock } from '../core/clock.ts';
import { ForbiddenError, type TmError, UnauthenticatedError } from '../core/errors.ts';
import { type AuditedField, type AuditTrail, mutationsOf } from './audit-trail.ts';
import type { AuthContext, Caller, Callers } from './callers.ts';
import { accessOf, mayRun, rootFields } from './role-table.ts';

/** graphql-ws close codes (PROTOCOL.md): no valid credentials; a role that changed since connect. */
export const WS_UNAUTHORIZED = 4401;
export const WS_FORBIDDEN = 4403;

function asGraphqlError(e: TmError): Error {
  return new mercurius.ErrorWithProps(e.message, { code: e.code }, e.status);
}

/** Every root field of every operation in the document (all must be allowed, whichever runs). */
export function operationsOf(document: DocumentNode): string[] {
  const fragments = new Map(
    document.definitions.flatMap((d) =>
      d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [],
    ),
  );
  return document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .flatMap((op) => rootFields(op, fragments));
}

/** The error for a caller (or nobody) asking for these operations, or null when all are allowed. */
export function refusal(caller: Caller | null, operations: string[]): TmError | null {
  for (const op of operations) {
    if (mayRun(caller?.role ?? null, op)) continue;
    if (!caller) return new UnauthenticatedError();
    return new ForbiddenError(`${op.split('.')[1]} needs the ${accessOf(op)} role; you are ${caller.role}`);
  }
  return null;
}

/** The mercurius options that put the caller into every HTTP request's context. */
export function authOptions(callers: Callers) {
  return {
    context: async (request: { headers: Record<string, unknown>; ip: string }): Promise<AuthContext> => ({
      caller: await callers.fromAuthorization(request.headers.authorization),
      address: request.ip,
    }),
  };
}

/** Closes the socket with 4401 when its access token expires (on the injected clock). */
export function closeWhenExpired(socket: WebSocket, expiresAt: number, clock: Clock): void {
  const timer = clock.setTimeout(
    () => socket.close(WS_UNAUTHORIZED, 'token expired'),
    Math.max(0, expiresAt - clock.now()),
  );
  socket.once('close', () => clock.clearTimeout(timer));
}

/**
 * The role table, checked before execution on HTTP and before a subscription starts; mutations
 * of a signed-in caller go to the audit trail, refused ones with TM_ERR_FORBIDDEN.
 */
export function installRoleChecks(app: FastifyInstance, trail: AuditTrail): void {
  const audited = new WeakMap<object, AuditedField[]>();
  app.graphql.addHook('preExecution', async (_schema, document, context, variables) => {
    const ctx = context as unknown as AuthContext;
    const refused = refusal(ctx.caller, operationsOf(document));
    const fields = ctx.caller ? mutationsOf(document, variables) : [];
    if (refused) {
      await trail.recordAll(ctx, fields, undefined, refused.code);
      throw asGraphqlError(refused);
    }
    if (fields.length) audited.set(context, fields);
  });
  app.graphql.addHook('onResolution', async (execution, context) => {
    const fields = audited.get(context);
    if (fields) await trail.recordAll(context as unknown as AuthContext, fields, execution.errors);
  });
}
