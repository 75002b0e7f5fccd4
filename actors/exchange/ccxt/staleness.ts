/**
 * Dead-feed detection per symbol: a symbol is stale after clamp(k × its expected interval,
 * minStaleMs, maxStaleMs) without a live trade (ccxt never notices a socket that stays open but
 * stops sending). A stale symbol streaming over websockets is probed over REST: trades found
 * there mean the stream is broken (reconnect); none means the market is quiet, and that
 * symbol's checks back off (doubling, up to maxBackoffMs).
 */
import type { TimerHandle } from '../../../core/clock.ts';
import type { FeedContext, SymbolRuntime } from './feed-context.ts';
import type { Repairs } from './repairs.ts';
import type { StalenessSettings } from './settings.ts';
import { isFlagged } from './symbol-phase.ts';

/** How long a symbol may go without a live trade before it counts as stale. */
export function staleAfterMs(
  s: StalenessSettings,
  expectedIntervalMs: number | undefined,
  quietLevel: number,
): number {
  const base =
    expectedIntervalMs === undefined
      ? s.maxStaleMs
      : Math.min(s.maxStaleMs, Math.max(s.minStaleMs, s.k * expectedIntervalMs));
  return Math.min(Math.max(base, s.maxBackoffMs), base * 2 ** quietLevel);
}

export class Watchdog {
  private timer: TimerHandle | undefined;

  constructor(
    private readonly ctx: FeedContext,
    private readonly repairs: Repairs,
    private readonly streaming: boolean,
  ) {}

  staleAfterMs(rt: SymbolRuntime): number {
    return staleAfterMs(this.ctx.s.staleness, rt.track.expectedIntervalMs, rt.quietLevel);
  }

  start(): void {
    this.timer = this.ctx.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.ctx.stopped) return;
      this.check();
      this.start();
    }, this.ctx.s.staleness.checkEveryMs);
  }

  stop(): void {
    if (this.timer) this.ctx.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const ctx = this.ctx;
    if (!ctx.connected) return; // the connection loop owns that
    const now = ctx.clock.now();
    for (const rt of ctx.runtimes.values()) {
      if (rt.phase.kind === 'repairing') continue;
      const since = Math.max(
        rt.lastLiveAt ?? Number.NEGATIVE_INFINITY,
        rt.verifiedAt ?? Number.NEGATIVE_INFINITY,
        rt.watchSince,
      );
      if (now - since < this.staleAfterMs(rt)) {
        ctx.applyPhase(rt, { type: 'heard' });
        continue;
      }
      if (isFlagged(rt.phase)) continue;
      ctx.applyPhase(rt, { type: 'silent' });
      ctx.counters.staleEvents++;
      ctx.log.warn(
        { symbol: rt.symbol, silentMs: now - since, staleAfterMs: this.staleAfterMs(rt) },
        'symbol stale',
      );
      if (this.streaming) this.repairs.repair(rt, 'stale');
    }
  }
}
