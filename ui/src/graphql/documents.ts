// Every GraphQL document the dashboard sends, with the TypeScript shape of its result.
// The shapes are written by hand against graphql/schema.graphql (the only thing ui/ shares
// with the server); keep them in step with the selection sets below.
import { gql, type TypedDocumentNode } from '@apollo/client/core';

export interface SymbolRow {
  exchange: string;
  symbol: string;
  active: boolean;
}

/** One bar as the gateway sends it (history and live share this selection). */
export interface Candle {
  exchange: string;
  symbol: string;
  timeframe: string;
  /** Bar open time, epoch milliseconds (UTC). */
  timeMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  closed: boolean;
  gap: number;
  revision: number;
}

export interface ActorHealth {
  id: string;
  kind: string;
  status: string;
  restarts: number;
  lastEventAt: string | null;
  stale: boolean;
}

export interface SeriesVariables {
  exchange: string;
  symbol: string;
  timeframe: string;
}

const CANDLE_FIELDS = gql`
  fragment CandleFields on Candle {
    exchange
    symbol
    timeframe
    timeMs
    open
    high
    low
    close
    volume
    trades
    closed
    gap
    revision
  }
`;

/** Symbols and timeframes arrive together: the pickers need both before the chart can load. */
export const MARKETS_QUERY: TypedDocumentNode<
  { symbols: SymbolRow[]; timeframes: string[] },
  Record<string, never>
> = gql`
  query Markets {
    symbols {
      exchange
      symbol
      active
    }
    timeframes
  }
`;

/** Without `from`: the newest `limit` closed bars. With `from` (epoch-ms string, inclusive): bars since then. */
export const CANDLES_QUERY: TypedDocumentNode<
  { candles: Candle[] },
  SeriesVariables & { limit: number; from?: string }
> = gql`
  query Candles($exchange: String!, $symbol: String!, $timeframe: String!, $from: String, $limit: Int) {
    candles(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, from: $from, limit: $limit) {
      ...CandleFields
    }
  }
  ${CANDLE_FIELDS}
`;

export const CANDLES_SUBSCRIPTION: TypedDocumentNode<{ candles: Candle }, SeriesVariables> = gql`
  subscription LiveCandles($exchange: String!, $symbol: String!, $timeframe: String!) {
    candles(exchange: $exchange, symbol: $symbol, timeframe: $timeframe) {
      ...CandleFields
    }
  }
  ${CANDLE_FIELDS}
`;

export const ACTORS_QUERY: TypedDocumentNode<{ actors: ActorHealth[] }, Record<string, never>> = gql`
  query Actors {
    actors {
      id
      kind
      status
      restarts
      lastEventAt
      stale
    }
  }
`;

/** How many closed bars the chart loads before going live. */
export const HISTORY_LIMIT = 500;
/** Page size when refilling a gap after a reconnect (the schema's maximum). */
export const REFILL_LIMIT = 5000;
