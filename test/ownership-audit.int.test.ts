/**
 * Alert rules belong to their creator (a trader sees, changes and deletes only their own rules
 * and firings, delivery errors included; an admin sees all), every mutation and login attempt
 * is in the audit log without secrets, and failed logins lock a user and an address out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, subjects } from '../core/protocol/index.ts';
import { createUser } from '../core/users-store.ts';
import { type Api, collect, gql, gqlHttp, signIn, wsClient } from './support/graphql.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';

const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;
const RULE = (threshold: number) =>
  `{exchange: "test", symbol: "AAPL", condition: PRICE_ABOVE, threshold: ${threshold},
    webhook: {url: "https://hooks.example.com/x", secret: "a-very-secret-webhook-key"}}`;

describe('ownership and audit', () => {
  let sys: TestSystem;
  let admin: Api;
  let alice: Api;
  let bob: Api;
  let aliceRule: string;

  beforeAll(async () => {
    sys = await startSystem({ exchange: { id: 'test', symbols: ['AAPL'] }, roles: ['gateway'] });
    admin = await signIn(sys.base);
    await createUser(sys.db.pool, 'alice', 'alice password', 'trader');
    await createUser(sys.db.pool, 'bob', 'bob password', 'trader');
    alice = await signIn(sys.base, 'alice', 'alice password');
    bob = await signIn(sys.base, 'bob', 'bob password');
  });
  afterAll(async () => sys?.stop());

  it('lets a trader see, change and delete only their own rules; an admin all', async () => {
    const a = await gql<{ createAlertRule: { id: string; owner: string } }>(
      alice,
      `mutation { createAlertRule(input: ${RULE(100)}) { id owner } }`,
    );
    aliceRule = a.data!.createAlertRule.id;
    expect(a.data!.createAlertRule.owner).toBe('alice');
    await gql(bob, `mutation { createAlertRule(input: ${RULE(200)}) { id } }`);
    const listOf = async (who: Api) =>
      (await gql<{ alertRules: { owner: string }[] }>(who, '{ alertRules { owner } }')).data!.alertRules.map(
        (r) => r.owner,
      );
    expect(await listOf(alice)).toEqual(['alice']);
    expect(await listOf(bob)).toEqual(['bob']);
    expect(await listOf(admin)).toEqual(['alice', 'bob']);

    const update = await gqlHttp(
      bob,
      `mutation { updateAlertRule(id: "${aliceRule}", input: ${RULE(1)}) { id } }`,
    );
    expect([update.status, codeOf(update.body)]).toEqual([403, 'TM_ERR_FORBIDDEN']);
    const del = await gqlHttp(bob, `mutation { deleteAlertRule(id: "${aliceRule}") }`);
    expect(codeOf(del.body)).toBe('TM_ERR_FORBIDDEN');
    const { rows } = await sys.db.pool.query('SELECT threshold FROM alert_rules WHERE id = $1', [aliceRule]);
    expect(rows).toEqual([{ threshold: 100 }]);
    // The owner and an admin may.
    const own = await gql(
      alice,
      `mutation { updateAlertRule(id: "${aliceRule}", input: ${RULE(150)}) { threshold } }`,
    );
    expect(own.data).toEqual({ updateAlertRule: { threshold: 150 } });
    const byAdmin = await gql(
      admin,
      `mutation { updateAlertRule(id: "${aliceRule}", input: ${RULE(120)}) { owner } }`,
    );
    expect(byAdmin.data).toEqual({ updateAlertRule: { owner: 'alice' } });
  });

  it("shows a rule's firings and delivery errors to its owner and admins only", async () => {
    await sys.db.pool.query(
      `INSERT INTO alert_events (id, rule_id, exchange, symbol, timeframe, bar_ts, condition, threshold, value,
                                 closed_bar, fired_at)
       VALUES ('f1', $1, 'test', 'AAPL', '1m', now(), 'PRICE_ABOVE', 120, 121, true, now())`,
      [aliceRule],
    );
    await sys.db.pool.query(
      `INSERT INTO alert_deliveries (event_id, channel, status, attempts, last_error)
       VALUES ('f1', 'webhook', 'failed', 8, 'HTTP 500 from hooks.example.com')`,
    );
    const Q = '{ alertEvents { id deliveries { lastError } } }';
    const events = (who: Api) => gql<{ alertEvents: unknown[] }>(who, Q);
    const seen = [{ id: 'f1', deliveries: [{ lastError: 'HTTP 500 from hooks.example.com' }] }];
    expect((await events(alice)).data!.alertEvents).toEqual(seen);
    expect((await events(admin)).data!.alertEvents).toEqual(seen);
    expect((await events(bob)).data!.alertEvents).toEqual([]);
    expect((await gql(bob, `{ alertEvents(ruleId: "${aliceRule}") { id } }`)).data).toEqual({
      alertEvents: [],
    });
  });

  it("streams a firing to its owner's subscription, not to another trader's", async () => {
    const aliceWs = wsClient(alice);
    const bobWs = wsClient(bob);
    const Q = 'subscription { alerts { id ruleId } }';
    const forAlice = collect<{ id: string }>(aliceWs, Q);
    const forBob = collect<{ id: string }>(bobWs, Q);
    await eventually(
      async () =>
        (await fetch(`${sys.metrics}/metrics`).then((r) => r.text())).includes(
          'tickmesh_graphql_subscriptions 2',
        ),
      'two subscriptions',
    );
    await using topo = await topology(sys.cfg, 'alerts');
    const firing = (id: string, ruleId: string) => ({
      v: 1,
      id,
      ruleId,
      exchange: 'test',
      symbol: 'AAPL',
      timeframe: '1m',
      condition: 'PRICE_ABOVE',
      threshold: 120,
      value: 121,
      barT: Date.now(),
      closed: true,
      at: Date.now(),
      seq: 1,
      final: true,
    });
    topo.nc.publish(subjects.alert(aliceRule), encodeJson(firing('fa', aliceRule)));
    const bobRule = (await sys.db.pool.query("SELECT id FROM alert_rules WHERE owner = 'bob'")).rows[0].id;
    topo.nc.publish(subjects.alert(bobRule), encodeJson(firing('fb', bobRule)));
    await forAlice.until((items) => items.length >= 1, 'alice firing');
    await forBob.until((items) => items.length >= 1, 'bob firing');
    expect(forAlice.items.map((f) => f.id)).toEqual(['fa']);
    expect(forBob.items.map((f) => f.id)).toEqual(['fb']);
    forAlice.dispose();
    forBob.dispose();
    await aliceWs.dispose();
    await bobWs.dispose();
  });

  it('keeps every mutation and login attempt in the audit log, without secrets, for admins', async () => {
    await gqlHttp(
      sys.base,
      'mutation { login(username: "alice", password: "wrong password") { accessToken } }',
    );
    const since = new Date(Date.now() - 60_000).toISOString();
    const r = await gql<{
      auditLog: {
        actor: string | null;
        role: string | null;
        operation: string;
        result: string;
        arguments: Record<string, unknown>;
        address: string;
      }[];
    }>(
      admin,
      'query($from: String) { auditLog(from: $from, limit: 1000) { actor role operation result arguments address } }',
      { from: since },
    );
    const log = r.data!.auditLog;
    const line = (e: (typeof log)[number]) => `${e.actor ?? '-'} ${e.role ?? '-'} ${e.operation} ${e.result}`;
    expect(log.map(line).reverse()).toEqual(
      expect.arrayContaining([
        'admin ADMIN login ok',
        'alice TRADER login ok',
        'alice TRADER createAlertRule ok',
        'bob TRADER updateAlertRule TM_ERR_FORBIDDEN',
        'bob TRADER deleteAlertRule TM_ERR_FORBIDDEN',
        'alice TRADER updateAlertRule ok',
        'admin ADMIN updateAlertRule ok',
        '- - login TM_ERR_UNAUTHENTICATED',
      ]),
    );
    const failed = log.find((e) => e.operation === 'login' && e.result !== 'ok')!;
    expect(failed.arguments).toEqual({ username: 'alice' });
    expect(failed.address).toMatch(/127\.0\.0\.1/);
    const text = JSON.stringify(log);
    expect(text).not.toMatch(/a-very-secret-webhook-key|alice password|wrong password/);
    expect(text).toContain('[redacted]');
    expect(codeOf(await gql(alice, '{ auditLog { id } }'))).toBe('TM_ERR_FORBIDDEN');
    const future = await gql(
      admin,
      `{ auditLog(from: "${new Date(Date.now() + 60_000).toISOString()}") { id } }`,
    );
    expect(future.data).toEqual({ auditLog: [] });
  });
});

describe('login brute force', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startSystem({
      roles: ['gateway'],
      config: { auth: { maxFailuresPerUser: 3, maxFailuresPerAddress: 5, lockoutMs: 60_000 } },
    });
    await createUser(sys.db.pool, 'tess', 'tess password', 'trader');
  });
  afterAll(async () => sys?.stop());

  const login = async (u: string, p: string) => {
    const t0 = Date.now();
    const r = await gqlHttp(
      sys.base,
      `mutation { login(username: "${u}", password: "${p}") { accessToken } }`,
    );
    return { code: codeOf(r.body) ?? 'ok', ms: Date.now() - t0 };
  };

  it('slows failed logins down, then locks the user out, then the address', async () => {
    const fails = [await login('tess', 'x1'), await login('tess', 'x2'), await login('tess', 'x3')];
    expect(fails.map((f) => f.code)).toEqual(Array(3).fill('TM_ERR_UNAUTHENTICATED'));
    // Each failure is answered later than the one before (250, 500, 1000 ms).
    expect(fails[1]!.ms).toBeGreaterThanOrEqual(500);
    expect(fails[2]!.ms).toBeGreaterThanOrEqual(1000);
    // Locked: even the right password is refused.
    expect((await login('tess', 'tess password')).code).toBe('TM_ERR_LOGIN_LOCKED');
    // Two more failures from the address (other names) lock the address for everyone.
    await login('nobody1', 'x');
    await login('nobody2', 'x');
    expect((await login('admin', 'test-admin-password')).code).toBe('TM_ERR_LOGIN_LOCKED');
    const { rows } = await sys.db.pool.query(
      "SELECT arguments->>'username' AS u, result FROM audit_log WHERE operation = 'login' ORDER BY id",
    );
    expect(rows.map((r) => `${r.u} ${r.result}`)).toEqual([
      'tess TM_ERR_UNAUTHENTICATED',
      'tess TM_ERR_UNAUTHENTICATED',
      'tess TM_ERR_UNAUTHENTICATED',
      'tess TM_ERR_LOGIN_LOCKED',
      'nobody1 TM_ERR_UNAUTHENTICATED',
      'nobody2 TM_ERR_UNAUTHENTICATED',
      'admin TM_ERR_LOGIN_LOCKED',
    ]);
  });
});
