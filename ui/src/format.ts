// Display formatting shared by the header, the chart caption and the actors panel.
import type { LiveCandlesSubscriptionVariables as SeriesVariables } from './graphql/generated/operations';

/** "sim · BTC/USDT": how a symbol reads in the picker. */
export function symbolLabel(exchange: string, symbol: string): string {
  return `${exchange} · ${symbol}`;
}

/**
 * Option value for a symbol. Exchange ids are lower-case ccxt ids without ':', so splitting at
 * the first ':' is unambiguous even for derivatives symbols like "BTC/USDT:USDT".
 */
export function symbolKey(exchange: string, symbol: string): string {
  return `${exchange}:${symbol}`;
}

export function parseSymbolKey(key: string): { exchange: string; symbol: string } | null {
  const at = key.indexOf(':');
  if (at <= 0 || at === key.length - 1) return null;
  return { exchange: key.slice(0, at), symbol: key.slice(at + 1) };
}

export function seriesKey(series: SeriesVariables): string {
  return `${symbolKey(series.exchange, series.symbol)}:${series.timeframe}`;
}

/** "sim · BTC/USDT · 1m": how a series reads in titles and error messages. */
export function seriesLabel(series: SeriesVariables): string {
  return `${symbolLabel(series.exchange, series.symbol)} · ${series.timeframe}`;
}

/** Fixed decimals, no thousands separators: the text stays a parseable number for tests. */
export function formatPrice(price: number, precision: number): string {
  return price.toFixed(precision);
}

export function formatPercent(ratio: number): string {
  const sign = ratio > 0 ? '+' : '';
  return `${sign}${(ratio * 100).toFixed(2)}%`;
}

/** "now", "4s ago", "3m ago", "2h ago", "5d ago"; future times (clock skew) read as "now". */
export function formatAge(thenMs: number, nowMs: number): string {
  const s = Math.floor((nowMs - thenMs) / 1000);
  if (s < 1) return 'now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** "2024-01-02 03:04 UTC": bar times are UTC everywhere in tickmesh, and say so. */
export function formatUtcMinute(timeMs: number): string {
  return `${new Date(timeMs).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Error text for the banner; Apollo errors already carry a readable message. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
