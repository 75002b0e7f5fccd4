// The symbols and timeframes the pickers offer. Reloaded after a socket reconnect, since a
// reconnect usually means the gateway restarted and the symbol set may have changed.
import { onScopeDispose, ref, shallowRef, watch } from 'vue';
import { errorMessage } from '../format';
import { useTickmeshClient } from '../graphql/client';
import { MarketsDocument, type SymbolFieldsFragment as SymbolRow } from '../graphql/generated/operations';

export function useMarkets() {
  const { apollo, connection } = useTickmeshClient();
  const symbols = shallowRef<SymbolRow[]>([]);
  const timeframes = shallowRef<string[]>([]);
  const loading = ref(false);
  const error = ref<string | null>(null);
  let disposed = false;

  async function load(): Promise<void> {
    loading.value = true;
    try {
      const { data } = await apollo.query({ query: MarketsDocument, variables: {} });
      if (disposed) return;
      symbols.value = [...data.symbols].sort(
        (a, b) => a.exchange.localeCompare(b.exchange) || a.symbol.localeCompare(b.symbol),
      );
      timeframes.value = data.timeframes;
      error.value = null;
    } catch (cause) {
      if (disposed) return;
      console.error('[tickmesh] could not load symbols and timeframes', cause);
      error.value = `Could not load symbols and timeframes: ${errorMessage(cause)}`;
    } finally {
      loading.value = false;
    }
  }

  void load();
  watch(
    () => connection.value.connects,
    (now, before) => {
      if (now > 1 && now !== before) void load();
    },
  );
  onScopeDispose(() => {
    disposed = true;
  });

  return { symbols, timeframes, loading, error, reload: load };
}
