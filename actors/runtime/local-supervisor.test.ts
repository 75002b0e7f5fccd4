import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.ts';
import type { ActorHealth, ActorSpec } from '../../core/protocol/index.ts';
import type { ActorBehavior, ActorContext } from './actor.ts';
import type { HealthSink } from './cell.ts';
import { LocalSupervisor, type SupervisorEvent } from './local-supervisor.ts';

const log = pino({ level: 'silent' });
const policy = { intensity: 3, periodMs: 60_000, backoffMs: 100, maxBackoffMs: 1000 };

class MemoryHealth implements HealthSink {
  records = new Map<string, ActorHealth>();
  async write(r: ActorHealth) {
    this.records.set(r.id, r);
  }
  async remove(id: string) {
    this.records.delete(id);
  }
}

/** A behavior the test controls: it runs until stopped, or crashes on demand. */
function controllable() {
  const runs: { ctx: ActorContext; crash: (e: Error) => void }[] = [];
  const behavior = (): ActorBehavior => ({
    run: (ctx) =>
      new Promise<void>((resolve, reject) => {
        ctx.ready();
        ctx.signal.addEventListener('abort', () => resolve());
        runs.push({ ctx, crash: reject });
      }),
  });
  return { runs, behavior };
}

const flush = () => new Promise((r) => setImmediate(r));
const spec = (id: string): ActorSpec => ({ id, kind: 'symbol', exchange: 'sim', symbol: id });

function setup() {
  const clock = new FakeClock(1_000_000);
  const health = new MemoryHealth();
  const events: SupervisorEvent[] = [];
  const ctl = controllable();
  const sup = new LocalSupervisor({
    policy,
    factory: ctl.behavior,
    clock,
    log,
    worker: 'w1',
    heartbeatMs: 1000,
    health,
    onEvent: (e) => events.push(e),
  });
  return { clock, health, events, ctl, sup };
}

describe('LocalSupervisor', () => {
  it('restarts a crashed child with a new session after its backoff', async () => {
    const { clock, ctl, sup, health, events } = setup();
    const cell = sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 });
    await flush();
    expect(health.records.get('a')?.status).toBe('running');
    const first = cell.sessionId;
    ctl.runs[0]!.crash(new Error('boom'));
    await flush();
    expect(cell.status.name).toBe('failed');
    clock.advance(99);
    expect(ctl.runs).toHaveLength(1);
    clock.advance(1);
    await flush();
    expect(ctl.runs).toHaveLength(2);
    expect(cell.sessionId).not.toBe(first);
    expect(cell.restarts).toBe(1);
    expect(health.records.get('a')).toMatchObject({ status: 'running', restarts: 1 });
    expect(events.map((e) => e.type)).toEqual(['started', 'crashed', 'restarted']);
  });

  it('backs off exponentially and marks a crash-looping child failed, leaving siblings alone', async () => {
    const { clock, ctl, sup, health, events } = setup();
    sup.startChild({ spec: spec('loop'), restart: 'permanent', shutdownMs: 100 });
    sup.startChild({ spec: spec('calm'), restart: 'permanent', shutdownMs: 100 });
    await flush();
    const loopRuns = () => ctl.runs.filter((r) => r.ctx.id === 'loop');
    const delays = [100, 200, 400];
    for (const d of delays) {
      loopRuns().at(-1)!.crash(new Error('again'));
      await flush();
      clock.advance(d - 1);
      const before = loopRuns().length;
      clock.advance(1);
      await flush();
      expect(loopRuns().length).toBe(before + 1);
    }
    loopRuns().at(-1)!.crash(new Error('last straw'));
    await flush();
    clock.advance(10_000);
    await flush();
    expect(loopRuns()).toHaveLength(4);
    expect(sup.get('loop')?.status.name).toBe('failed');
    expect(health.records.get('loop')).toMatchObject({ status: 'failed', restarts: 3 });
    expect(health.records.get('loop')?.error).toMatch(/gave up after 3 restarts/);
    expect(sup.get('calm')?.status.name).toBe('running');
    expect(events.filter((e) => e.type === 'failed').map((e) => e.id)).toEqual(['loop']);
    // The failed record keeps being heartbeated so it does not expire from the bucket.
    health.records.delete('loop');
    clock.advance(1000);
    expect(health.records.get('loop')?.status).toBe('failed');
  });

  it('forgets restarts older than the period', async () => {
    const { clock, ctl, sup } = setup();
    sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 });
    await flush();
    for (let i = 0; i < 6; i++) {
      ctl.runs.at(-1)!.crash(new Error('sometimes'));
      await flush();
      clock.advance(61_000);
      await flush();
    }
    expect(sup.get('a')?.status.name).toBe('running');
    expect(ctl.runs).toHaveLength(7);
  });

  it('lets an operator restart a failed child', async () => {
    const { clock, ctl, sup } = setup();
    sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 });
    await flush();
    for (let i = 0; i < 4; i++) {
      ctl.runs.at(-1)!.crash(new Error('x'));
      await flush();
      clock.advance(1000);
      await flush();
    }
    expect(sup.get('a')?.status.name).toBe('failed');
    expect(await sup.restartChild('a')).toBe(true);
    await flush();
    expect(sup.get('a')?.status.name).toBe('running');
  });

  it('does not restart a transient child that exits normally, nor a temporary one that crashes', async () => {
    const { ctl, sup } = setup();
    sup.startChild({ spec: spec('t'), restart: 'transient', shutdownMs: 100 });
    sup.startChild({ spec: spec('tmp'), restart: 'temporary', shutdownMs: 100 });
    await flush();
    ctl.runs[0]!.ctx.signal.dispatchEvent(new Event('abort'));
    ctl.runs[1]!.crash(new Error('x'));
    await flush();
    expect(sup.has('t')).toBe(false);
    expect(sup.has('tmp')).toBe(false);
  });

  it('refuses to register the same actor id twice', () => {
    const { sup } = setup();
    sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 });
    expect(() => sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 })).toThrow(
      /already registered/,
    );
  });

  it('stops children and removes their health records', async () => {
    const { sup, health } = setup();
    sup.startChild({ spec: spec('a'), restart: 'permanent', shutdownMs: 100 });
    await flush();
    await sup.stopAll();
    expect(health.records.size).toBe(0);
    expect(sup.has('a')).toBe(false);
  });
});
