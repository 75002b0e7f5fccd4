import { describe, expect, it } from 'vitest';
import {
  type ConnectionEvent,
  type ConnectionState,
  closeEventOf,
  INITIAL_CONNECTION,
  messageOf,
  reduceConnection,
} from './connection';

function run(events: ConnectionEvent[], from: ConnectionState = INITIAL_CONNECTION): ConnectionState {
  return events.reduce(reduceConnection, from);
}

describe('reduceConnection', () => {
  it('starts connecting and goes live', () => {
    expect(INITIAL_CONNECTION.phase).toBe('connecting');
    const s = run([{ type: 'connecting', isRetry: false }, { type: 'connected' }]);
    expect(s).toEqual({ phase: 'live', detail: null, connects: 1 });
  });

  it('shows reconnecting with the close reason after a live socket drops', () => {
    const s = run([
      { type: 'connected' },
      { type: 'closed', code: 1006, reason: '' },
      { type: 'connecting', isRetry: true },
    ]);
    expect(s.phase).toBe('reconnecting');
    expect(s.detail).toBe('connection closed (1006)');
    expect(run([{ type: 'connected' }], s)).toEqual({ phase: 'live', detail: null, connects: 2 });
  });

  it('keeps the error visible through the close that follows it, until the next attempt', () => {
    const s = run([
      { type: 'connecting', isRetry: false },
      { type: 'error', message: 'WebSocket error' },
      { type: 'closed', code: 1006, reason: '' },
    ]);
    expect(s).toMatchObject({ phase: 'error', detail: 'WebSocket error' });
    expect(run([{ type: 'connecting', isRetry: true }], s).phase).toBe('reconnecting');
  });

  it('stays reconnecting through failed retries instead of flickering to error', () => {
    const s = run([
      { type: 'connected' },
      { type: 'closed', code: 1006, reason: '' },
      { type: 'connecting', isRetry: true },
      { type: 'error', message: 'WebSocket error' },
      { type: 'closed', code: 1006, reason: '' },
      { type: 'connecting', isRetry: true },
    ]);
    expect(s.phase).toBe('reconnecting');
    expect(s.detail).toBe('connection closed (1006)');
  });

  it('shows an error on a live socket until the retry starts', () => {
    const s = run([{ type: 'connected' }, { type: 'error', message: 'WebSocket error' }]);
    expect(s).toMatchObject({ phase: 'error', detail: 'WebSocket error' });
  });

  it('ends in error when the client gives up', () => {
    const s = run([{ type: 'connected' }, { type: 'gave-up', message: 'connection closed (4400): Bad' }]);
    expect(s).toMatchObject({ phase: 'error', detail: 'connection closed (4400): Bad', connects: 1 });
  });
});

describe('messageOf / closeEventOf', () => {
  it('reads errors, close events and bare socket error events', () => {
    expect(messageOf(new Error('boom'))).toBe('boom');
    expect(messageOf({ code: 4403, reason: 'Forbidden' })).toBe('connection closed (4403): Forbidden');
    expect(messageOf({ type: 'error' })).toBe('WebSocket error');
    expect(closeEventOf(undefined)).toEqual({ code: null, reason: '' });
  });
});
