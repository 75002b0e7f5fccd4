// One Apollo client per page: queries and mutations over HTTP, subscriptions over graphql-ws
// (graphql-transport-ws), both same-origin at /graphql. The WebSocket client's events drive
// the connection state the header shows.
import { ApolloClient, HttpLink, InMemoryCache, split } from '@apollo/client/core';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { type Client, createClient } from 'graphql-ws';
import { type InjectionKey, inject, type Ref, readonly, shallowRef } from 'vue';
import {
  type ConnectionEvent,
  type ConnectionState,
  closeEventOf,
  INITIAL_CONNECTION,
  messageOf,
  reduceConnection,
} from './connection';

export interface TickmeshClient {
  apollo: ApolloClient<unknown>;
  connection: Readonly<Ref<ConnectionState>>;
  dispose(): Promise<void>;
}

export interface Endpoints {
  httpUrl: string;
  wsUrl: string;
}

/** Same-origin endpoints: ws:// next to http://, wss:// next to https://. */
export function endpointsFor(location: Pick<Location, 'protocol' | 'host'>): Endpoints {
  const ws = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return { httpUrl: '/graphql', wsUrl: `${ws}//${location.host}/graphql` };
}

/** Capped exponential backoff with jitter: a restarted gateway is found again within ~10 s. */
function retryWait(retries: number): Promise<void> {
  const ms = Math.min(10_000, 500 * 2 ** retries) + Math.random() * 300;
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

/**
 * Where the page keeps the access token it sends (`Authorization: Bearer …` on HTTP, the
 * connection_init payload on graphql-ws). Until the dashboard has a login page (issue 12), it is
 * put there by whoever opens the page (the browser tests sign in and set it).
 */
export const ACCESS_TOKEN_KEY = 'tickmeshAccessToken';

function storedAuthorization(): Record<string, string> {
  const token = window.localStorage.getItem(ACCESS_TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

export function createTickmeshClient(endpoints: Endpoints): TickmeshClient {
  const connection = shallowRef<ConnectionState>(INITIAL_CONNECTION);
  const dispatch = (event: ConnectionEvent): void => {
    connection.value = reduceConnection(connection.value, event);
  };

  const ws: Client = createClient({
    url: endpoints.wsUrl,
    connectionParams: storedAuthorization,
    // Eager, so the header shows the real socket state before the first subscription.
    lazy: false,
    // A dashboard should outlive gateway restarts: keep retrying, whatever closed the socket.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait,
    keepAlive: 15_000,
    onNonLazyError: (error) => {
      console.error('[tickmesh] subscription socket gave up', error);
      dispatch({ type: 'gave-up', message: messageOf(error) });
    },
    on: {
      connecting: (isRetry) => dispatch({ type: 'connecting', isRetry }),
      connected: () => dispatch({ type: 'connected' }),
      closed: (event) => dispatch({ type: 'closed', ...closeEventOf(event) }),
      error: (error) => {
        console.error('[tickmesh] subscription socket error', error);
        dispatch({ type: 'error', message: messageOf(error) });
      },
    },
  });

  const isSubscription = ({ query }: { query: Parameters<typeof getMainDefinition>[0] }): boolean => {
    const main = getMainDefinition(query);
    return main.kind === 'OperationDefinition' && main.operation === 'subscription';
  };

  const apollo = new ApolloClient({
    link: split(
      isSubscription,
      new GraphQLWsLink(ws),
      new HttpLink({ uri: endpoints.httpUrl, headers: storedAuthorization() }),
    ),
    cache: new InMemoryCache(),
    // Market data and health are live: never answer from a cache.
    defaultOptions: {
      query: { fetchPolicy: 'no-cache', errorPolicy: 'none' },
      watchQuery: { fetchPolicy: 'no-cache', errorPolicy: 'none' },
      mutate: { fetchPolicy: 'no-cache', errorPolicy: 'none' },
    },
  });

  return {
    apollo,
    connection: readonly(connection) as Readonly<Ref<ConnectionState>>,
    async dispose() {
      apollo.stop();
      await ws.dispose();
    },
  };
}

export const TICKMESH_CLIENT: InjectionKey<TickmeshClient> = Symbol('tickmesh-client');

export function useTickmeshClient(): TickmeshClient {
  const client = inject(TICKMESH_CLIENT);
  if (!client) throw new Error('useTickmeshClient() called outside an app that provides TICKMESH_CLIENT');
  return client;
}
