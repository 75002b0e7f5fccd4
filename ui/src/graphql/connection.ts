// The WebSocket connection as the user sees it, as a pure reducer over graphql-ws client
// events, so the transitions are tested without a socket.

/** The word shown in the header (and read by browser tests through data-testid). */
export type ConnectionPhase = 'connecting' | 'live' | 'reconnecting' | 'error';

export interface ConnectionState {
  phase: ConnectionPhase;
  /** Why we are not live (last error or close reason); null while live. */
  detail: string | null;
  /** Successful connections so far; a rise past 1 means "reconnected, refill any gap". */
  connects: number;
}

/** graphql-ws `on` listeners, plus `gave-up` for its onNonLazyError (it will not retry). */
export type ConnectionEvent =
  | { type: 'connecting'; isRetry: boolean }
  | { type: 'connected' }
  | { type: 'closed'; code: number | null; reason: string }
  | { type: 'error'; message: string }
  | { type: 'gave-up'; message: string };

export const INITIAL_CONNECTION: ConnectionState = { phase: 'connecting', detail: null, connects: 0 };

export function reduceConnection(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  switch (event.type) {
    case 'connecting':
      // Once we have been live, or after a failed first attempt, a new attempt is a retry.
      return {
        ...state,
        phase: event.isRetry || state.connects > 0 ? 'reconnecting' : 'connecting',
      };
    case 'connected':
      return { phase: 'live', detail: null, connects: state.connects + 1 };
    case 'closed': {
      // A socket error is followed by a close: keep showing the error, it says more.
      if (state.phase === 'error') return { ...state, detail: state.detail ?? describeClose(event) };
      return { ...state, phase: 'reconnecting', detail: describeClose(event) };
    }
    case 'error':
      // While retrying, each failed attempt errors; flipping the badge to "error" and back on
      // every attempt is noise, so the attempt's error only becomes the detail.
      if (state.phase === 'reconnecting') return { ...state, detail: event.message };
      return { ...state, phase: 'error', detail: event.message };
    case 'gave-up':
      return { ...state, phase: 'error', detail: event.message };
  }
}

export function describeClose(event: { code: number | null; reason: string }): string {
  const code = event.code === null ? 'connection closed' : `connection closed (${event.code})`;
  return event.reason ? `${code}: ${event.reason}` : code;
}

/**
 * graphql-ws hands listeners `unknown` (it avoids DOM types); in a browser they are a
 * CloseEvent, an Event or an Error. Pull out what a person can read.
 */
export function closeEventOf(event: unknown): { code: number | null; reason: string } {
  if (typeof event === 'object' && event !== null) {
    const { code, reason } = event as { code?: unknown; reason?: unknown };
    return { code: typeof code === 'number' ? code : null, reason: typeof reason === 'string' ? reason : '' };
  }
  return { code: null, reason: '' };
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null) {
    const { code, reason } = closeEventOf(error);
    // A browser WebSocket "error" Event carries no message at all.
    if (code !== null) return describeClose({ code, reason });
    if ('type' in error && (error as { type: unknown }).type === 'error') return 'WebSocket error';
  }
  return String(error);
}
