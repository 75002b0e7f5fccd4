/**
 * Leader lease in KV `supervisor-leader`: `create` takes a free lease, `update` with the last
 * revision renews it (well inside the bucket TTL), and any failed renewal or a renewal older
 * than the TTL means the lease is lost. Callers check `assertHeld()` before every write, so a
 * stale leader that wakes up never acts on an old belief; where they see a newer leader's
 * trace (a higher term on what it wrote), `confirm()` renews now, and only a success lets them go on.
 * Renewals run on the injected clock, so tests drive them with a FakeClock.
 */
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import { type Clock, every, type Repeating } from '../core/clock.ts';
import { NotLeaderError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { encodeJson, kvKeys, SCHEMA_VERSION } from '../core/protocol/index.ts';

const KEY = kvKeys.supervisorLeader;

export class LeaderLease {
  private revision = 0;
  /** Revision at which this term's lease was created: the epoch stamped on what the leader writes. */
  private term = 0;
  private renewedAt = Number.NEGATIVE_INFINITY;
  private since = 0;
  private timer: Repeating | null = null;
  /** The renewal in flight: ticks that fire meanwhile join it instead of racing it. */
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly kv: KV,
    private readonly id: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onChange: (leader: boolean) => void = () => {},
  ) {}

  get isLeader(): boolean {
    return this.revision > 0 && this.clock.now() - this.renewedAt < this.ttlMs * 0.8;
  }

  /** The leadership term (lease creation revision); 0 when not leader. */
  get epoch(): number {
    return this.revision > 0 ? this.term : 0;
  }

  assertHeld(): void {
    if (!this.isLeader) throw new NotLeaderError(`lease revision ${this.revision} not renewed in time`);
  }

  start(): void {
    void this.tick();
    this.timer = every(this.clock, Math.max(200, Math.floor(this.ttlMs / 4)), () => void this.tick());
  }

  async stop(): Promise<void> {
    this.timer?.stop();
    if (this.revision > 0) {
      // Release early so a standby takes over without waiting for the TTL.
      await this.kv.delete(KEY, { previousSeq: this.revision }).catch(() => {});
      this.lose('released');
    }
  }

  private record() {
    const now = this.clock.now();
    return encodeJson({
      v: SCHEMA_VERSION,
      id: this.id,
      host: hostname(),
      pid: process.pid,
      since: this.since || now,
      renewedAt: now,
    });
  }

  /** Renews the lease, or tries to take it when not leader. */
  tick(): Promise<void> {
    this.inflight ??= this.renew().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /**
   * Proves the lease with a renewal that starts now (after any in flight, which may predate
   * what made the caller doubt): true only while the key is still this term's.
   */
  async confirm(): Promise<boolean> {
    if (this.inflight) await this.inflight;
    if (this.revision === 0) return false;
    await this.tick();
    return this.isLeader;
  }

  private async renew(): Promise<void> {
    const started = this.clock.now();
    try {
      if (this.revision > 0) {
        this.revision = await this.kv.update(KEY, this.record(), this.revision);
        this.renewedAt = started;
      } else {
        this.since = started;
        this.revision = await this.kv.create(KEY, this.record());
        this.term = this.revision;
        this.renewedAt = started;
        this.log.info({ supervisor: this.id, revision: this.revision }, 'became leader');
        this.onChange(true);
      }
    } catch (e) {
      if (this.revision > 0) {
        this.log.warn({ err: e }, 'lost the leader lease');
        this.lose('renew failed');
      }
    }
  }

  private lose(_why: string): void {
    const was = this.revision > 0;
    this.revision = 0;
    this.since = 0;
    this.renewedAt = Number.NEGATIVE_INFINITY;
    if (was) this.onChange(false);
  }
}
