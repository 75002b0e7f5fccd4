/**
 * The leader lease on a real KV bucket, with time on a FakeClock: renewals every TTL/4 keep it,
 * a leader that has not renewed within 0.8 TTL stops acting, and one whose key was taken over
 * (it expired while the leader was paused, and another supervisor created it) cannot renew or
 * prove it again. The bucket TTL is long, so the server never expires the key on its own
 * during a test; expiry is a delete, as a TTL expiry would leave it.
 */
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { NotLeaderError } from '../core/errors.ts';
import { connectNats } from '../core/nats.ts';
import { BUCKETS, decodeWith, kvKeys, leaderRecordSchema } from '../core/protocol/index.ts';
import { startTestNats, type TestNats, testLog } from '../test/support/infra.ts';
import { LeaderLease } from './leader.ts';

const TTL = 4000;

describe('LeaderLease', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let kv: KV;

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'leader-test', { user: 'operator', pass: nats.passwords.operator });
    kv = await new Kvm(nc).create(BUCKETS.supervisorLeader, { ttl: 600_000, history: 1 });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  beforeEach(async () => {
    await kv.purge(kvKeys.supervisorLeader);
  });

  function lease(id: string, clock = new FakeClock(1_000_000)) {
    const changes: boolean[] = [];
    return { lease: new LeaderLease(kv, id, TTL, clock, testLog, (l) => changes.push(l)), clock, changes };
  }

  const holder = async () => {
    const e = await kv.get(kvKeys.supervisorLeader);
    if (e?.operation !== 'PUT') return null;
    const rec = decodeWith(leaderRecordSchema, e.value);
    return rec.ok ? rec.value.id : null;
  };

  it('takes a free lease and keeps it while its clock drives renewals every TTL/4', async () => {
    const { lease: a, clock, changes } = lease('A');
    a.start();
    await a.tick(); // joins the first renewal start() began
    expect(a.isLeader).toBe(true);
    const epoch = a.epoch;
    const { revision } = (await kv.get(kvKeys.supervisorLeader))!;
    for (let i = 0; i < 12; i++) {
      clock.advance(TTL / 4);
      await a.tick(); // joins the renewal the timer started
      expect(a.isLeader).toBe(true);
    }
    expect(a.epoch).toBe(epoch);
    expect((await kv.get(kvKeys.supervisorLeader))!.revision).toBeGreaterThanOrEqual(revision + 12);
    expect(changes).toEqual([true]);
    await a.stop();
    expect(await holder()).toBeNull();
    expect(changes).toEqual([true, false]);
  });

  it('stops acting when it has not renewed within 0.8 TTL (renewals stalled or the process paused)', async () => {
    const { lease: a, clock } = lease('A');
    await a.tick();
    expect(a.isLeader).toBe(true);
    clock.advance(TTL * 0.8 - 1);
    expect(() => a.assertHeld()).not.toThrow();
    clock.advance(1);
    expect(a.isLeader).toBe(false);
    expect(() => a.assertHeld()).toThrow(NotLeaderError);
  });

  it('a standby cannot take a held lease, and takes it once released', async () => {
    const { lease: a } = lease('A');
    const { lease: b, changes } = lease('B');
    await a.tick();
    await b.tick();
    expect(b.isLeader).toBe(false);
    expect(changes).toEqual([]);
    await a.stop();
    await b.tick();
    expect(b.isLeader).toBe(true);
    expect(await holder()).toBe('B');
  });

  it('a leader whose key was taken over while it was paused loses the lease at its next renewal', async () => {
    const { lease: a, changes } = lease('A');
    await a.tick();
    const oldEpoch = a.epoch;
    // A pauses past the TTL: its key expires and B takes the lease with a newer term.
    await kv.delete(kvKeys.supervisorLeader);
    const { lease: b } = lease('B');
    await b.tick();
    expect(b.isLeader).toBe(true);
    expect(b.epoch).toBeGreaterThan(oldEpoch);
    // A wakes up; its own clock has not moved, so it still believes it leads…
    expect(a.isLeader).toBe(true);
    // …until its renewal's compare-and-set on the old revision fails.
    await a.tick();
    expect(a.isLeader).toBe(false);
    expect(changes).toEqual([true, false]);
    await a.tick(); // and it cannot create the key B holds
    expect(a.isLeader).toBe(false);
    expect(await holder()).toBe('B');
    expect(b.isLeader).toBe(true);
  });

  it('confirm() proves a held lease and refuses a superseded one', async () => {
    const { lease: a } = lease('A');
    await a.tick();
    expect(await a.confirm()).toBe(true);
    await kv.delete(kvKeys.supervisorLeader);
    const { lease: b } = lease('B');
    await b.tick();
    expect(a.isLeader).toBe(true);
    expect(await a.confirm()).toBe(false);
    expect(a.isLeader).toBe(false);
    expect(await holder()).toBe('B');
  });
});
