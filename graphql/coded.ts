/** Resolver wrapping: our errors become GraphQL errors carrying `extensions.code` and status. */
import mercurius from 'mercurius';
import { TmError } from '../core/errors.ts';
import type { AuthContext } from './callers.ts';

/** Wraps `fn(args, context)` as a resolver whose TmErrors carry their code. */
export function gql<A, R>(
  fn: (args: A, ctx: AuthContext) => Promise<R>,
): (root: unknown, args: A, ctx: AuthContext) => Promise<R> {
  return async (_root, args, ctx) => {
    try {
      return await fn(args, ctx);
    } catch (e) {
      if (e instanceof TmError) throw new mercurius.ErrorWithProps(e.message, { code: e.code }, e.status);
      throw e;
    }
  };
}
