// Which series the chart shows, kept in the URL (?exchange=&symbol=&timeframe=) so a reload or
// a shared link opens the same chart, and falling back to a sensible default.
import { computed, type Ref, ref, watch } from 'vue';
import type {
  LiveCandlesSubscriptionVariables as SeriesVariables,
  SymbolFieldsFragment as SymbolRow,
} from '../graphql/generated/operations';

const PREFERRED_TIMEFRAME = '1m';

function readUrl(): Partial<SeriesVariables> {
  const params = new URLSearchParams(window.location.search);
  return {
    exchange: params.get('exchange') ?? undefined,
    symbol: params.get('symbol') ?? undefined,
    timeframe: params.get('timeframe') ?? undefined,
  };
}

function writeUrl(series: SeriesVariables): void {
  const url = new URL(window.location.href);
  url.searchParams.set('exchange', series.exchange);
  url.searchParams.set('symbol', series.symbol);
  url.searchParams.set('timeframe', series.timeframe);
  // replaceState: switching symbols should not fill the back button's history.
  if (url.href !== window.location.href) window.history.replaceState(null, '', url);
}

export function useSelection(symbols: Readonly<Ref<SymbolRow[]>>, timeframes: Readonly<Ref<string[]>>) {
  const wanted = readUrl();
  const exchange = ref<string | null>(wanted.exchange ?? null);
  const symbol = ref<string | null>(wanted.symbol ?? null);
  const timeframe = ref<string | null>(wanted.timeframe ?? null);

  // Once the lists arrive (or change), replace a choice they do not contain. An empty list
  // means "not loaded yet" and must not wipe the choice the URL asked for.
  watch(
    [symbols, timeframes],
    () => {
      if (symbols.value.length === 0 || timeframes.value.length === 0) return;
      const known = symbols.value.some((s) => s.exchange === exchange.value && s.symbol === symbol.value);
      if (!known) {
        const first = symbols.value.find((s) => s.active) ?? symbols.value[0];
        exchange.value = first?.exchange ?? null;
        symbol.value = first?.symbol ?? null;
      }
      if (timeframe.value === null || !timeframes.value.includes(timeframe.value)) {
        timeframe.value = timeframes.value.includes(PREFERRED_TIMEFRAME)
          ? PREFERRED_TIMEFRAME
          : (timeframes.value[0] ?? null);
      }
    },
    { immediate: true },
  );

  // Only a choice the lists confirmed becomes a series; until then the chart waits.
  const series = computed<SeriesVariables | null>(() => {
    if (exchange.value === null || symbol.value === null || timeframe.value === null) return null;
    const known = symbols.value.some((s) => s.exchange === exchange.value && s.symbol === symbol.value);
    if (!known || !timeframes.value.includes(timeframe.value)) return null;
    return { exchange: exchange.value, symbol: symbol.value, timeframe: timeframe.value };
  });

  watch(series, (s) => {
    if (s) writeUrl(s);
  });

  function selectSymbol(next: { exchange: string; symbol: string }): void {
    exchange.value = next.exchange;
    symbol.value = next.symbol;
  }

  function selectTimeframe(next: string): void {
    timeframe.value = next;
  }

  return { series, selectSymbol, selectTimeframe };
}
