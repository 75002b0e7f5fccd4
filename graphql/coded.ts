/**
 * Resolver wrapping: our errors become GraphQL errors carrying `extensions.code` and status, and
 * a resolver still running when its request's time limit passes answers TM_ERR_LIMIT.
 */
import mercurius from 'mercurius';
import { TmError } from '../core/errors.ts';
import type { AuthContext } from './callers.ts';
import { withinDeadline } from './limits.ts';

/** Wraps `fn(args, context)` as a resolver whose TmErrors carry their code. */
export function gql<A, R>(
  fn: (args: A, ctx: AuthContext) => Promise<R>,
): (root: unknown, args: A, ctx: AuthContext) => Promise<R> {
  return async (_root, args, ctx) => {
    try {
      return await withinDeadline(ctx, fn(args, ctx));
    } catch (e) {
      if (e instanceof TmError) throw new mercurius.ErrorWithProps(e.message, { code: e.code }, e.status);
      throw e;
    }
  };
}
