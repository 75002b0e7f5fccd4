/** A small GraphQL client for tests: HTTP queries and graphql-ws subscriptions, signed in or not. */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { TEST_AUTH } from './infra.ts';

export interface GqlResult<T = Record<string, unknown>> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** A gateway and the credential to use there (an access token or an API key). */
export interface Api {
  base: string;
  token: string;
}

/** A gateway base URL alone is an anonymous caller; an Api is a signed-in one. */
export type Target = string | Api;

const baseOf = (t: Target) => (typeof t === 'string' ? t : t.base);
const authorizationOf = (t: Target) => (typeof t === 'string' ? undefined : `Bearer ${t.token}`);

/** The HTTP status and body of one GraphQL request. */
export async function gqlHttp<T = Record<string, unknown>>(
  target: Target,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ status: number; body: GqlResult<T> }> {
  const authorization = authorizationOf(target);
  const res = await fetch(`${baseOf(target)}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, body: (await res.json()) as GqlResult<T> };
}

export async function gql<T = Record<string, unknown>>(
  target: Target,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult<T>> {
  return (await gqlHttp<T>(target, query, variables)).body;
}

/** Logs in (as the test admin every test system bootstraps, unless told otherwise). */
export async function signIn(
  base: string,
  username: string = TEST_AUTH.adminUser,
  password: string = TEST_AUTH.adminPassword,
): Promise<Api & { refreshToken: string }> {
  const r = await gql<{ login: { accessToken: string; refreshToken: string } }>(
    base,
    'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken refreshToken } }',
    { u: username, p: password },
  );
  if (!r.data) throw new Error(`login as ${username} failed: ${JSON.stringify(r.errors)}`);
  return { base, token: r.data.login.accessToken, refreshToken: r.data.login.refreshToken };
}

export function wsClient(target: Target, options: Partial<Parameters<typeof createClient>[0]> = {}): Client {
  const authorization = authorizationOf(target);
  return createClient({
    url: `${baseOf(target).replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    ...(authorization ? { connectionParams: { authorization } } : {}),
    ...options,
  });
}

/** Collects subscription payloads; `until` resolves when `predicate` holds for the collected list. */
export function collect<T>(client: Client, query: string, variables?: Record<string, unknown>) {
  const items: T[] = [];
  const errors: unknown[] = [];
  const waiters: { pred: (items: T[]) => boolean; resolve: () => void }[] = [];
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (v) => {
        if (v.errors) errors.push(...v.errors);
        const value = v.data ? Object.values(v.data)[0] : undefined;
        if (value !== undefined) items.push(value as T);
        for (const w of [...waiters])
          if (w.pred(items)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
      },
      error: (e) => errors.push(e),
      complete: () => {},
    },
  );
  return {
    items,
    errors,
    dispose,
    until(pred: (items: T[]) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
      if (pred(items)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `subscription: timed out waiting for ${what} (${items.length} items, errors ${JSON.stringify(errors)})`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}
