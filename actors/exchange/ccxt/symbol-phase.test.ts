import { describe, expect, it } from 'vitest';
import {
  buffersLive,
  INITIAL_PHASE,
  isFlagged,
  isStale,
  nextPhase,
  type PhaseEvent,
  type SymbolPhase,
  symbolFeedState,
} from './symbol-phase.ts';

const run = (events: PhaseEvent[], from: SymbolPhase = INITIAL_PHASE) => events.reduce(nextPhase, from);

describe('nextPhase', () => {
  it('a repair starts from following, re-arms once while running, and takes the re-armed reason next', () => {
    let p = run([{ type: 'repair', reason: 'connect' }]);
    expect(p).toMatchObject({ kind: 'repairing', reason: 'connect', again: undefined, unproven: false });
    p = run(
      [
        { type: 'repair', reason: 'stale' },
        { type: 'repair', reason: 'frame' },
      ],
      p,
    );
    expect(p).toMatchObject({ kind: 'repairing', reason: 'connect', again: 'stale' });
    p = nextPhase(p, { type: 'repair-next' });
    expect(p).toMatchObject({ kind: 'repairing', reason: 'stale', again: undefined });
    expect(nextPhase(p, { type: 'repair-next' })).toBe(p);
    expect(nextPhase(p, { type: 'repair-done' })).toEqual({ kind: 'following', freshness: 'fresh' });
  });

  it('a reconnect repair without a live trade leaves the stream unproven; its first live trade starts a verify', () => {
    const p = run([{ type: 'repair', reason: 'connect' }, { type: 'unproven' }, { type: 'repair-done' }]);
    expect(p).toEqual({ kind: 'unproven', freshness: 'fresh' });
    expect(buffersLive(p)).toBe(true);
    expect(nextPhase(p, { type: 'live' })).toMatchObject({
      kind: 'repairing',
      reason: 'verify',
      unproven: false,
    });
    // A repair started while unproven keeps the stream unproven when it ends.
    const stale = run([{ type: 'repair', reason: 'stale' }, { type: 'repair-done' }], p);
    expect(stale.kind).toBe('unproven');
  });

  it('freshness: the watchdog flags once, REST-missed trades stay stale until a live trade or a quiet verdict', () => {
    let p = run([{ type: 'silent' }]);
    expect([isFlagged(p), isStale(p)]).toEqual([true, true]);
    p = nextPhase(p, { type: 'missing' });
    expect(p.freshness).toBe('silent-missing');
    p = nextPhase(p, { type: 'heard' }); // a new connection restarts the wait, the missed trades still count
    expect([p.freshness, isFlagged(p), isStale(p)]).toEqual(['missing', false, true]);
    p = nextPhase(p, { type: 'silent' });
    expect(p.freshness).toBe('silent-missing');
    expect(nextPhase(p, { type: 'live' }).freshness).toBe('fresh');
    expect(nextPhase(p, { type: 'quiet' }).freshness).toBe('fresh');
    expect(nextPhase(INITIAL_PHASE, { type: 'heard' })).toBe(INITIAL_PHASE);
  });
});

describe('symbolFeedState', () => {
  const feed = { connected: true, streaming: true, blocked: false };

  it('names the state health reports', () => {
    expect(symbolFeedState(INITIAL_PHASE, feed)).toBe('streaming');
    expect(symbolFeedState(INITIAL_PHASE, { ...feed, connected: false })).toBe('backoff');
    const repairing = nextPhase(INITIAL_PHASE, { type: 'repair', reason: 'connect' });
    expect(symbolFeedState(repairing, feed)).toBe('repairing');
    expect(symbolFeedState(repairing, { ...feed, blocked: true })).toBe('backoff');
    expect(symbolFeedState(nextPhase(INITIAL_PHASE, { type: 'missing' }), feed)).toBe('stale');
    const polling = { ...feed, streaming: false };
    expect(symbolFeedState(INITIAL_PHASE, polling)).toBe('polling');
    expect(symbolFeedState(nextPhase(INITIAL_PHASE, { type: 'silent' }), polling)).toBe('stale');
    expect(symbolFeedState(INITIAL_PHASE, { ...polling, blocked: true })).toBe('backoff');
  });
});
