import { describe, expect, it } from 'vitest';
import { controlSubjects, NATS_PRINCIPALS, type NatsPrincipal, natsPermissions } from './nats-permissions.ts';
import { BUCKETS, consumers, permissionSubjects, serviceSubjects, subjects } from './protocol/index.ts';

/**
 * Whether `subject` matches the NATS pattern `pattern` (`*` one token, `>` the rest), as the
 * server matches permissions.
 */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

/** Whether the server lets `principal` publish to `subject` (deny wins over allow). */
function mayPublish(principal: NatsPrincipal, subject: string): boolean {
  const { allow, deny } = natsPermissions(principal).publish;
  return allow.some((a) => matches(a, subject)) && !deny.some((d) => matches(d, subject));
}

const who = (subject: string) => NATS_PRINCIPALS.filter((p) => mayPublish(p, subject));

describe('NATS permissions', () => {
  it('matches subjects the way the server does (the check itself)', () => {
    const trade = subjects.trade('sim', 'BTC/USDT');
    expect(matches(permissionSubjects.trades, trade)).toBe(true);
    expect(matches(permissionSubjects.bars, trade)).toBe(false);
    const [roleRestart, instanceRestart] = permissionSubjects.control('worker', 'restart');
    expect(matches(instanceRestart!, serviceSubjects.instance('worker', 'w1', 'restart'))).toBe(true);
    expect(matches(instanceRestart!, serviceSubjects.role('worker', 'restart'))).toBe(false);
    expect(matches(roleRestart!, serviceSubjects.role('worker', 'restart'))).toBe(true);
    expect(matches('a.b', 'a.b.c')).toBe(false);
  });

  it('lets only exchange actors (and the operator) publish trades', () => {
    expect(who(subjects.trade('binance', 'BTC/USDT'))).toEqual(['operator', 'exchange']);
  });

  it('lets only symbol actors publish bars, analytics updates, forming bars, alerts and quality', () => {
    for (const subject of [
      subjects.bar('1m', 'sim', 'BTC/USDT'),
      subjects.analyticsUpdate('5m', 'sim', 'BTC/USDT'),
      subjects.live('1m', 'sim', 'BTC/USDT'),
      subjects.alert('r1'),
      subjects.quality('sim', 'BTC/USDT'),
    ])
      expect(who(subject), subject).toEqual(['operator', 'symbol']);
  });

  it('lets only the supervisor write assignments and the leader lease', () => {
    for (const bucket of [BUCKETS.actorAssign, BUCKETS.supervisorLeader])
      expect(who(permissionSubjects.kvWrites(bucket).replace('>', 'k'))).toEqual(['operator', 'supervisor']);
    expect(who(permissionSubjects.kvWrites(BUCKETS.featuresLatest).replace('>', 'k'))).toEqual([
      'operator',
      'symbol',
    ]);
    expect(who(permissionSubjects.kvWrites(BUCKETS.workers).replace('>', 'k'))).toEqual([
      'operator',
      'worker',
    ]);
  });

  it('keeps control subjects to the operator, but for the two forwards the design needs', () => {
    for (const subject of controlSubjects().map((s) => s.replace('*', 'w1'))) {
      const allowed = who(subject);
      if (subject === serviceSubjects.role('supervisor', 'restart'))
        expect(allowed, subject).toEqual(['operator', 'gateway']); // the admin mutation
      else if (subject === serviceSubjects.instance('worker', 'w1', 'restart'))
        expect(allowed, subject).toEqual(['operator', 'supervisor']); // the supervisor forwards
      else expect(allowed, subject).toEqual(['operator']);
    }
  });

  it('lets only the supervisor and the operator create, change, purge or delete streams', () => {
    for (const admin of permissionSubjects.streamAdmin)
      expect(who(admin.replace('>', 'TRADES')), admin).toEqual(['operator', 'supervisor']);
    // Everyone uses JetStream as a client: lookups, consumers, acks.
    for (const p of NATS_PRINCIPALS) expect(mayPublish(p, '$JS.API.CONSUMER.INFO.TRADES.x'), p).toBe(true);
  });

  it("keeps each market-data stream's consumers to its readers (nobody drains another's durable)", () => {
    const readers = { TRADES: 'symbol', BARS: 'writer', EVENTS: 'alerts' } as const;
    for (const [stream, reader] of Object.entries(readers)) {
      const durable = stream === 'BARS' ? consumers.barWriter : 'd1';
      for (const subject of [
        `$JS.API.CONSUMER.CREATE.${stream}`,
        `$JS.API.CONSUMER.CREATE.${stream}.${durable}.md.x`,
        `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${durable}`,
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
        `$JS.ACK.${stream}.${durable}.1.2.3.4.5`,
      ])
        expect(who(subject), subject).toEqual(['operator', reader]);
      // The supervisor releases the durables of symbols that are no longer active (TRADES only).
      expect(who(`$JS.API.CONSUMER.DELETE.${stream}.${durable}`)).toEqual(
        stream === 'TRADES' ? ['operator', 'supervisor', reader] : ['operator', reader],
      );
      // Looking a consumer up is everyone's.
      expect(who(`$JS.API.CONSUMER.INFO.${stream}.${durable}`)).toEqual([...NATS_PRINCIPALS]);
    }
    // KV buckets are streams too: every user watches them.
    for (const p of NATS_PRINCIPALS)
      expect(mayPublish(p, `$JS.API.CONSUMER.CREATE.KV_${BUCKETS.actorAssign}`), p).toBe(true);
  });

  it('lets only the processes of a role (and the operator) listen on its service subjects', () => {
    const mayListen = (principal: NatsPrincipal, subject: string) => {
      const { allow, deny } = natsPermissions(principal).subscribe;
      return allow.some((a) => matches(a, subject)) && !deny.some((d) => matches(d, subject));
    };
    for (const role of ['worker', 'supervisor', 'gateway'] as const)
      for (const subject of [
        serviceSubjects.role(role, 'restart'),
        serviceSubjects.instance(role, 'w1', 'drain'),
        serviceSubjects.role(role, 'status'),
      ])
        expect(
          NATS_PRINCIPALS.filter((p) => mayListen(p, subject)),
          subject,
        ).toEqual(['operator', role]);
    for (const p of NATS_PRINCIPALS)
      expect(mayListen(p, subjects.live('1m', 'sim', 'BTC/USDT')), p).toBe(true);
  });

  it('gives the gateway no market-data subject at all', () => {
    for (const subject of [
      subjects.trade('sim', 'BTC/USDT'),
      subjects.bar('1m', 'sim', 'BTC/USDT'),
      subjects.live('1m', 'sim', 'BTC/USDT'),
      subjects.alert('r1'),
      subjects.quality('sim', 'BTC/USDT'),
      subjects.quarantine('sim', 'BTC/USDT'),
      subjects.actorEvent('started', 'symbol.sim.BTC-USDT'),
    ])
      expect(mayPublish('gateway', subject), subject).toBe(false);
  });
});
