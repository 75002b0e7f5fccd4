// One chart series: history over HTTP, then live candles over graphql-ws, folded together by
// the rules in charts/candles.ts. Switching series tears the old subscription down first.
import type { ObservableSubscription } from '@apollo/client/core';
import { onScopeDispose, type Ref, ref, shallowRef, watch } from 'vue';
import {
  type CandleStreamMessage,
  type ChartFeed,
  changeFor,
  mergeCandle,
  normaliseHistory,
  type SeriesChange,
  toStreamMessage,
} from '../charts/candles';
import { errorMessage, seriesKey, seriesLabel } from '../format';
import { useTickmeshClient } from '../graphql/client';
import {
  type CandleFieldsFragment as Candle,
  CandlesDocument,
  LiveCandlesDocument,
  type LiveCandlesSubscriptionVariables as SeriesVariables,
} from '../graphql/generated/operations';
import { recordHistory, recordLiveUpdate, resetProbe } from '../probe';

/** How many closed bars the chart loads before going live. */
export const HISTORY_LIMIT = 500;
/** Page size when refilling a gap after a reconnect (the schema's maximum). */
export const REFILL_LIMIT = 5000;

/** Everything that belongs to one subscribed series; replaced wholesale on a switch. */
interface Session {
  readonly vars: SeriesVariables;
  /** For error messages: "sim · BTC/USDT · 1m". */
  readonly label: string;
  subscription: ObservableSubscription | null;
  /** Live candles held back while history loads (subscribe first, so nothing falls between). */
  buffer: Candle[] | null;
  /** Socket connection (ConnectionState.connects) the history was fetched on; -1 if none. */
  loadedOn: number;
}

/** `history`: the newest bars, replacing the series. `refill`: bars since the last closed one. */
type LoadMode = 'history' | 'refill';

export function useCandleSeries(series: Readonly<Ref<SeriesVariables | null>>) {
  const { apollo, connection } = useTickmeshClient();
  const bars = shallowRef<Candle[]>([]);
  const listeners = new Set<(change: SeriesChange) => void>();
  const feed: ChartFeed = {
    bars: () => bars.value,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const loading = ref(false);
  const error = ref<string | null>(null);
  /** Browser clock time of the last live candle applied. */
  const lastUpdateAt = ref<number | null>(null);
  let session: Session | null = null;

  function publish(next: Candle[], work: SeriesChange): void {
    bars.value = next;
    for (const listener of listeners) listener(work);
  }

  function fail(s: Session, what: string, cause: unknown): void {
    if (session !== s) return;
    console.error(`[tickmesh] ${what} for ${s.label}`, cause);
    error.value = `${what} for ${s.label}: ${errorMessage(cause)}`;
  }

  function receive(s: Session, message: CandleStreamMessage): void {
    if (session !== s) return; // a late message of a series we already left
    switch (message.type) {
      case 'forming':
      case 'closed':
        if (s.buffer) s.buffer.push(message.candle);
        else applyLive(s, message.candle);
        return;
      case 'error':
        fail(s, 'Live updates failed', message.error);
        return;
      case 'complete':
        fail(s, 'Live updates stopped', new Error('the gateway ended the subscription'));
        return;
    }
  }

  function applyLive(s: Session, candle: Candle): void {
    const result = mergeCandle(bars.value, candle, s.vars);
    const work = changeFor(result);
    if (result.type === 'ignore' || work === null) return;
    publish(result.bars, work);
    lastUpdateAt.value = Date.now();
    recordLiveUpdate(result.bars[result.bars.length - 1]?.timeMs ?? null);
  }

  function mergeAll(current: Candle[], candles: readonly Candle[], s: Session): Candle[] {
    let next = current;
    for (const candle of candles) {
      const result = mergeCandle(next, candle, s.vars);
      if (result.type !== 'ignore') next = result.bars;
    }
    return next;
  }

  async function queryCandles(vars: SeriesVariables, limit: number, from?: number): Promise<Candle[]> {
    const variables = { ...vars, limit, ...(from === undefined ? {} : { from: String(from) }) };
    const { data } = await apollo.query({ query: CandlesDocument, variables });
    return normaliseHistory(data.candles);
  }

  async function load(s: Session, mode: LoadMode): Promise<void> {
    s.buffer ??= [];
    s.loadedOn = connection.value.phase === 'live' ? connection.value.connects : -1;
    loading.value = true;
    const before = bars.value;
    let next = before;
    let loaded: number | null = null;
    try {
      const anchor = mode === 'refill' ? before.findLast((b) => b.closed) : undefined;
      const since = anchor ? await queryCandles(s.vars, REFILL_LIMIT, anchor.timeMs) : null;
      if (session !== s) return;
      if (since && since.length < REFILL_LIMIT) {
        next = mergeAll(before, since, s);
      } else {
        // First load, nothing closed to refill from, or a gap longer than one page.
        const history = await queryCandles(s.vars, HISTORY_LIMIT);
        if (session !== s) return;
        const end = history[history.length - 1]?.timeMs ?? Number.NEGATIVE_INFINITY;
        // Keep the forming bar already on screen; history only holds closed bars.
        next = mergeAll(
          history,
          before.filter((b) => b.timeMs > end),
          s,
        );
        loaded = history.length;
      }
      error.value = null;
    } catch (cause) {
      fail(s, 'Could not load candles', cause);
      if (session !== s) return;
    }
    next = mergeAll(next, s.buffer, s);
    s.buffer = null;
    loading.value = false;
    publish(next, { type: 'reset', bars: next, fit: before.length === 0 && loaded !== null });
    if (loaded !== null) recordHistory(loaded, next[next.length - 1]?.timeMs ?? null);
    refillIfStale(s);
  }

  /**
   * Candles published while the socket was down never reach the subscription; when it
   * (re)connects after the history was fetched, fetch what closed in between.
   */
  function refillIfStale(s: Session): void {
    if (session !== s || s.buffer !== null) return;
    const { phase, connects } = connection.value;
    if (phase === 'live' && s.loadedOn !== connects) void load(s, 'refill');
  }

  function start(vars: SeriesVariables): void {
    stop();
    const s: Session = { vars, label: seriesLabel(vars), subscription: null, buffer: [], loadedOn: -1 };
    session = s;
    resetProbe(seriesKey(vars));
    publish([], { type: 'reset', bars: [], fit: true });
    error.value = null;
    lastUpdateAt.value = null;
    s.subscription = apollo
      .subscribe({ query: LiveCandlesDocument, variables: vars, fetchPolicy: 'no-cache' })
      .subscribe({
        next: (result) => {
          if (result.errors?.length) {
            receive(s, { type: 'error', error: new Error(result.errors.map((e) => e.message).join('; ')) });
            return;
          }
          if (result.data?.candles) receive(s, toStreamMessage(result.data.candles));
        },
        error: (cause: unknown) =>
          receive(s, { type: 'error', error: cause instanceof Error ? cause : new Error(String(cause)) }),
        complete: () => receive(s, { type: 'complete' }),
      });
    void load(s, 'history');
  }

  function stop(): void {
    session?.subscription?.unsubscribe();
    session = null;
    loading.value = false;
  }

  /** Retry after an error: a fresh subscription and a fresh history load. */
  function reload(): void {
    if (series.value) start(series.value);
  }

  watch(
    () => (series.value ? seriesKey(series.value) : null),
    () => {
      if (series.value) start(series.value);
      else {
        stop();
        resetProbe(null);
        publish([], { type: 'reset', bars: [], fit: true });
      }
    },
    { immediate: true },
  );
  watch(
    () => connection.value.connects,
    () => {
      if (session) refillIfStale(session);
    },
  );
  onScopeDispose(stop);

  return { bars, feed, loading, error, lastUpdateAt, reload };
}
