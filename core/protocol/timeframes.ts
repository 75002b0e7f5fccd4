/** Bar timeframes, shortest first. A bar's time is its open time, aligned to the timeframe in UTC. */
export const TIMEFRAMES = ['1m', '5m', '15m', '1h', '4h', '1d'] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

const MINUTE = 60_000;
export const TIMEFRAME_MS: Readonly<Record<Timeframe, number>> = Object.freeze({
  '1m': MINUTE,
  '5m': 5 * MINUTE,
  '15m': 15 * MINUTE,
  '1h': 60 * MINUTE,
  '4h': 240 * MINUTE,
  '1d': 1440 * MINUTE,
});

/** Timeframes that roll up from closed 1m bars. */
export const HIGHER_TIMEFRAMES = TIMEFRAMES.filter((tf) => tf !== '1m') as Exclude<Timeframe, '1m'>[];

export function isTimeframe(value: string): value is Timeframe {
  return (TIMEFRAMES as readonly string[]).includes(value);
}

/** Open time of the bucket containing `ts`. Works for negative epochs too. */
export function bucketStart(ts: number, tf: Timeframe): number {
  const size = TIMEFRAME_MS[tf];
  return Math.floor(ts / size) * size;
}

export function bucketEnd(openTime: number, tf: Timeframe): number {
  return openTime + TIMEFRAME_MS[tf];
}
