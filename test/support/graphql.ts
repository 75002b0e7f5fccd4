/** A small GraphQL client for tests: HTTP queries and graphql-ws subscriptions. */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface GqlResult<T = Record<string, unknown>> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function gql<T = Record<string, unknown>>(
  base: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult<T>> {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GqlResult<T>;
}

export function wsClient(base: string): Client {
  return createClient({
    url: `${base.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
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
