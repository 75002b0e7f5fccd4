// The series life cycle against a stub client: buffering while history loads, tearing down on
// a switch, refilling after a reconnect, and reporting (not swallowing) a failed load.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createApp, effectScope, nextTick, ref, shallowRef } from 'vue';
import { TICKMESH_CLIENT, type TickmeshClient } from '../graphql/client';
import { type ConnectionState, INITIAL_CONNECTION } from '../graphql/connection';
import type {
  CandleFieldsFragment as Candle,
  LiveCandlesSubscriptionVariables as SeriesVariables,
} from '../graphql/generated/operations';
import { useCandleSeries } from './useCandleSeries';

const BTC: SeriesVariables = { exchange: 'sim', symbol: 'BTC/USDT', timeframe: '1m' };
const ETH: SeriesVariables = { exchange: 'sim', symbol: 'ETH/USDT', timeframe: '1m' };
const T0 = Date.UTC(2024, 0, 2, 3, 0);

function candle(series: SeriesVariables, minute: number, closed = true, close = 100): Candle {
  const timeMs = T0 + minute * 60_000;
  return {
    ...series,
    timeMs,
    open: 100,
    high: 110,
    low: 90,
    close,
    volume: 1,
    trades: 1,
    closed,
    gap: 0,
    revision: 0,
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A stub of the parts of Apollo the composable uses; each query waits for the test to answer. */
function stubClient() {
  const queries: { variables: Record<string, unknown>; answer: Deferred<{ data: { candles: Candle[] } }> }[] =
    [];
  const streams: { variables: SeriesVariables; push(c: Candle): void; closed: boolean }[] = [];
  const connection = shallowRef<ConnectionState>({ ...INITIAL_CONNECTION, phase: 'live', connects: 1 });
  const apollo = {
    query: vi.fn(({ variables }: { variables: Record<string, unknown> }) => {
      const answer = deferred<{ data: { candles: Candle[] } }>();
      queries.push({ variables, answer });
      return answer.promise;
    }),
    subscribe: ({ variables }: { variables: SeriesVariables }) => ({
      subscribe(observer: { next(r: { data: { candles: Candle } }): void }) {
        const stream = {
          variables,
          closed: false,
          push: (c: Candle) => stream.closed || observer.next({ data: { candles: c } }),
        };
        streams.push(stream);
        return { unsubscribe: () => (stream.closed = true) };
      },
    }),
  };
  const client = { apollo, connection, dispose: async () => {} } as unknown as TickmeshClient;
  return { client, queries, streams, connection };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await nextTick();
};

describe('useCandleSeries', () => {
  let stub: ReturnType<typeof stubClient>;
  let scope: ReturnType<typeof effectScope>;
  const series = ref<SeriesVariables | null>(BTC);

  function mount() {
    const app = createApp({}).provide(TICKMESH_CLIENT, stub.client);
    return app.runWithContext(() => scope.run(() => useCandleSeries(series)))!;
  }

  beforeEach(() => {
    vi.stubGlobal('window', globalThis);
    vi.spyOn(console, 'error').mockImplementation(() => {});
    stub = stubClient();
    scope = effectScope();
    series.value = BTC;
  });
  afterEach(() => {
    scope.stop();
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it('subscribes before loading history and merges what arrived meanwhile', async () => {
    const s = mount();
    expect(stub.streams).toHaveLength(1);
    stub.streams[0]!.push(candle(BTC, 3, false, 105)); // live, while history is in flight
    stub.queries[0]!.answer.resolve({ data: { candles: [candle(BTC, 1), candle(BTC, 2)] } });
    await settle();
    expect(s.bars.value.map((b) => b.timeMs)).toEqual([1, 2, 3].map((m) => T0 + m * 60_000));
    expect(s.loading.value).toBe(false);
    stub.streams[0]!.push(candle(BTC, 3, false, 107));
    expect(s.bars.value[2]!.close).toBe(107);
    expect(window.__tickmesh).toMatchObject({ series: 'sim:BTC/USDT:1m', candlesLoaded: 2, liveUpdates: 1 });
  });

  it('tears the old subscription down on a switch and drops its late history', async () => {
    const s = mount();
    const btcHistory = stub.queries[0]!;
    series.value = ETH;
    await settle();
    expect(stub.streams[0]!.closed).toBe(true);
    expect(stub.streams[1]!.variables).toEqual(ETH);
    btcHistory.answer.resolve({ data: { candles: [candle(BTC, 1)] } });
    stub.queries[1]!.answer.resolve({ data: { candles: [candle(ETH, 5)] } });
    await settle();
    expect(s.bars.value.map((b) => b.symbol)).toEqual(['ETH/USDT']);
  });

  it('refills the gap from the last closed bar after the socket reconnects', async () => {
    const s = mount();
    stub.queries[0]!.answer.resolve({ data: { candles: [candle(BTC, 1), candle(BTC, 2)] } });
    await settle();
    stub.streams[0]!.push(candle(BTC, 3, false));
    stub.connection.value = { phase: 'live', detail: null, connects: 2 };
    await settle();
    expect(stub.queries[1]!.variables).toMatchObject({ from: String(T0 + 2 * 60_000), limit: 5000 });
    stub.queries[1]!.answer.resolve({ data: { candles: [candle(BTC, 2), candle(BTC, 3), candle(BTC, 4)] } });
    await settle();
    expect(s.bars.value.map((b) => [b.timeMs, b.closed])).toEqual([
      [T0 + 60_000, true],
      [T0 + 120_000, true],
      [T0 + 180_000, true],
      [T0 + 240_000, true],
    ]);
  });

  it('shows a failed history load and still applies live candles', async () => {
    const s = mount();
    stub.queries[0]!.answer.reject(new Error('TM_ERR_DB_UNAVAILABLE'));
    await settle();
    expect(s.error.value).toBe('Could not load candles for sim · BTC/USDT · 1m: TM_ERR_DB_UNAVAILABLE');
    expect(console.error).toHaveBeenCalled();
    stub.streams[0]!.push(candle(BTC, 7, false));
    expect(s.bars.value).toHaveLength(1);
  });
});
