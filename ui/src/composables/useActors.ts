// Actor health, polled. A failed poll keeps the last good list on screen (marked as old by
// `updatedAt`) and shows the error; the next poll tries again.
import { onScopeDispose, ref, shallowRef } from 'vue';
import { errorMessage } from '../format';
import { useTickmeshClient } from '../graphql/client';
import { type ActorFieldsFragment as ActorHealth, ActorsDocument } from '../graphql/generated/operations';

export const ACTORS_POLL_MS = 3000;

export function useActors(intervalMs = ACTORS_POLL_MS) {
  const { apollo } = useTickmeshClient();
  const actors = shallowRef<ActorHealth[]>([]);
  const error = ref<string | null>(null);
  /** Browser time of the last successful poll; null until the first one. */
  const updatedAt = ref<number | null>(null);
  let timer: number | undefined;
  let stopped = false;
  let inFlight = false;

  async function poll(): Promise<void> {
    if (inFlight) return; // a manual refresh during a poll must not start a second chain
    inFlight = true;
    window.clearTimeout(timer);
    try {
      const { data } = await apollo.query({ query: ActorsDocument, variables: {} });
      if (stopped) return;
      actors.value = [...data.actors].sort(
        (a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id),
      );
      updatedAt.value = Date.now();
      error.value = null;
    } catch (cause) {
      if (stopped) return;
      console.error('[tickmesh] could not load actor health', cause);
      error.value = `Could not load actor health: ${errorMessage(cause)}`;
    } finally {
      inFlight = false;
    }
    // Chained timeouts, not setInterval: a slow gateway never gets overlapping polls.
    if (!stopped) timer = window.setTimeout(() => void poll(), intervalMs);
  }

  void poll();
  onScopeDispose(() => {
    stopped = true;
    window.clearTimeout(timer);
  });

  return { actors, error, updatedAt, refresh: poll };
}
