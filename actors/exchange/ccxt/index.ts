/** The ccxt feed's public surface (see feed.ts). */
export { CcxtFeed, type CcxtFeedConfig } from './feed.ts';
export type { SymbolFeedState } from './symbol-phase.ts';
export type {
  CcxtExchange,
  ConnectionHealth,
  ConnectionState,
  FeedGap,
  FeedHealth,
  ResumePoint,
  SymbolHealth,
  TradeSink,
  TradeSource,
} from './types.ts';
