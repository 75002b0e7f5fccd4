/**
 * Symbols under abuse: the grammar refuses what would break NATS names or fool a reader
 * (32 emoji, Cyrillic look-alikes, a right-to-left override, 500 characters, NUL) and stores
 * nothing; 500 addSymbol aliases in one request are refused whole; an exchange's quota of
 * active symbols holds, also under concurrent additions. removeSymbol (admin only) stops the
 * actor and deletes its durable; deactivating releases the durable and reactivating continues
 * the bars exactly; a symbol stored before the grammar that cannot run gets no actor and can be
 * removed; a durable left behind by a crash is released by the next leader.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import { isNotFound, type Topology } from '../core/nats.ts';
import { actorIds, consumers, STREAMS, subjects } from '../core/protocol/index.ts';
import { createUser } from '../core/users-store.ts';
import { startSupervisorRole } from '../launcher/roles.ts';
import { type Api, type GqlResult, gql, gqlHttp, signIn } from './support/graphql.ts';
import { eventually, testLog, topology } from './support/infra.ts';
import { startSystem, type TestSystem } from './support/system.ts';
import { publishTrades, syntheticTrades } from './support/trades.ts';

const EX = 'test';
const START = Date.UTC(2024, 0, 3, 0, 0, 0);
const code = (r: GqlResult<unknown>) => r.errors?.[0]?.extensions?.code;

async function consumerExists(topo: Topology, ex: string, sym: string): Promise<boolean> {
  try {
    await topo.jsm.consumers.info(STREAMS.trades, consumers.symbolTrades(ex, sym));
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

async function consumerNames(topo: Topology): Promise<string[]> {
  const out: string[] = [];
  for await (const c of topo.jsm.consumers.list(STREAMS.trades)) out.push(c.name);
  return out.sort();
}

describe('symbols', () => {
  let sys: TestSystem;
  let api: Api;
  let topo: Topology & AsyncDisposable;

  beforeAll(async () => {
    sys = await startSystem({
      exchange: { id: EX, symbols: ['AAPL'] },
      config: { symbols: { maxActivePerExchange: 3, maxMutationsPerRequest: 10 } },
    });
    api = await signIn(sys.base);
    topo = await topology(sys.cfg);
    await eventually(() => consumerExists(topo, EX, 'AAPL'), 'AAPL durable');
  });
  afterAll(async () => {
    await topo?.[Symbol.asyncDispose]();
    await sys?.stop();
  });

  const rows = async () =>
    (await sys.db.pool.query('SELECT exchange, symbol, active FROM symbols ORDER BY symbol')).rows;
  const add = (symbol: string) =>
    gql<{ addSymbol: { active: boolean } }>(
      api,
      'mutation($s: String!) { addSymbol(exchange: "test", symbol: $s) { active } }',
      { s: symbol },
    );
  const setActive = (symbol: string, active: boolean) =>
    gql<{ setSymbolActive: { active: boolean } }>(
      api,
      'mutation($s: String!, $a: Boolean!) { setSymbolActive(exchange: "test", symbol: $s, active: $a) { active } }',
      { s: symbol, a: active },
    );
  const remove = (target: Api, symbol: string) =>
    gqlHttp<{ removeSymbol: boolean }>(
      target,
      'mutation($s: String!) { removeSymbol(exchange: "test", symbol: $s) }',
      { s: symbol },
    );

  it.each([
    ['32 emoji', '\u{1F680}'.repeat(32), /non-ASCII character U\+1F680/, 'TM_ERR_INVALID_SYMBOL'],
    ['a Cyrillic look-alike', 'ВТС/USDT', /non-ASCII character U\+0412/, 'TM_ERR_INVALID_SYMBOL'],
    ['a right-to-left override', 'BTC/USDT\u202E', /bidi control character U\+202E/, 'TM_ERR_INVALID_SYMBOL'],
    ['500 characters', 'X'.repeat(500), /length must be 1\.\.64/, 'TM_ERR_INVALID_SYMBOL'],
    // A NUL byte is refused by the gateway in any argument, before the symbol grammar sees it.
    ['a NUL', 'BTC\u0000USDT', /NUL/, 'TM_ERR_BAD_ARGUMENT'],
  ])('refuses %s with a coded error and stores nothing', async (_what, symbol, reason, expected) => {
    const before = { rows: await rows(), durables: await consumerNames(topo) };
    const r = await add(symbol);
    expect(code(r)).toBe(expected);
    const message = r.errors?.[0]?.message ?? '';
    expect(message).toMatch(reason);
    // Reflected input is bounded and escaped: no raw control or bidi character comes back.
    expect(message.length).toBeLessThan(300);
    expect([...message].filter((c) => c < ' ' || c > '~')).toEqual([]);
    expect(r.data ?? null).toBeNull();
    expect(await rows()).toEqual(before.rows);
    expect(await consumerNames(topo)).toEqual(before.durables);
  });

  it('refuses 500 addSymbol aliases in one request whole, before any change (TM_ERR_LIMIT)', async () => {
    const before = await rows();
    const aliases = Array.from(
      { length: 500 },
      (_, i) => `a${i}: addSymbol(exchange: "test", symbol: "FLOOD${i}") { active }`,
    );
    const r = await gqlHttp(api, `mutation { ${aliases.join('\n')} }`);
    // The gateway's general cost limit (gateway.limits) answers this one before the symbol quota.
    expect(code(r.body)).toBe('TM_ERR_LIMIT');
    expect(r.body.data ?? null).toBeNull();
    expect(await rows()).toEqual(before);
    // Eleven are refused too; the limit counts symbol mutations, not other fields.
    const eleven = Array.from(
      { length: 11 },
      (_, i) => `r${i}: removeSymbol(exchange: "test", symbol: "NONE${i}")`,
    );
    expect(code(await gql(api, `mutation { ${eleven.join(' ')} }`))).toBe('TM_ERR_LIMIT');
    const ten = eleven.slice(0, 10);
    expect((await gql(api, `mutation { ${ten.join(' ')} }`)).data).toEqual(
      Object.fromEntries(ten.map((_, i) => [`r${i}`, false])),
    );
  });

  it("holds an exchange's quota of active symbols, also under concurrent additions", async () => {
    expect((await add('Q1')).data).toEqual({ addSymbol: { active: true } }); // AAPL + Q1
    // One place left, four callers at once: exactly one gets it.
    const raced = await Promise.all(['C1', 'C2', 'C3', 'C4'].map(add));
    expect(raced.filter((r) => r.data?.addSymbol.active === true)).toHaveLength(1);
    expect(raced.filter((r) => code(r) === 'TM_ERR_LIMIT')).toHaveLength(3);
    const winner = ['C1', 'C2', 'C3', 'C4'][raced.findIndex((r) => r.data)]!;
    const full = await add('Q2');
    expect(code(full)).toBe('TM_ERR_LIMIT');
    expect(full.errors?.[0]?.message).toMatch(/active symbols on exchange "test" \(3 now.*maximum of 3/);
    expect((await rows()).map((r) => r.symbol)).toEqual(['AAPL', winner, 'Q1']);
    // Re-adding an active one takes no new place; deactivating frees one; activating needs one.
    expect((await add('Q1')).data).toEqual({ addSymbol: { active: true } });
    expect((await setActive(winner, false)).data).toEqual({ setSymbolActive: { active: false } });
    expect((await add('Q2')).data).toEqual({ addSymbol: { active: true } });
    expect(code(await setActive(winner, true))).toBe('TM_ERR_LIMIT');
    for (const s of [winner, 'Q1', 'Q2'])
      expect((await remove(api, s)).body.data).toEqual({ removeSymbol: true });
    expect(await rows()).toEqual([{ exchange: EX, symbol: 'AAPL', active: true }]);
  });

  it('gives a symbol stored before the grammar that cannot run no actor, and lets an admin remove it', async () => {
    const legacy = '\u{1F680}'.repeat(32); // its durable name would be 392 characters
    await sys.db.pool.query(`INSERT INTO symbols (exchange, symbol) VALUES ($1, $2)`, [EX, legacy]);
    expect((await add('AFTER')).data).toEqual({ addSymbol: { active: true } });
    // The desired set still loads: the symbol added after it gets its actor and durable.
    await eventually(() => consumerExists(topo, EX, 'AFTER'), 'AFTER durable');
    const assigned = [];
    for await (const k of await topo.kv.assign.keys()) assigned.push(k);
    expect(assigned.filter((k) => k.startsWith('symbol.test.') && !/AAPL|AFTER/.test(k))).toEqual([]);
    expect((await setActive(legacy, false)).data).toEqual({ setSymbolActive: { active: false } });
    expect(code(await setActive(legacy, true))).toBe('TM_ERR_INVALID_SYMBOL');
    for (const s of [legacy, 'AFTER'])
      expect((await remove(api, s)).body.data).toEqual({ removeSymbol: true });
    await eventually(async () => !(await consumerExists(topo, EX, 'AFTER')), 'AFTER durable released');
  });

  it('removes a symbol for an admin only: its actor stops and its durable is deleted; history stays', async () => {
    const sym = 'RM/USDT';
    const actor = actorIds.symbol(EX, sym);
    expect((await add(sym)).data).toEqual({ addSymbol: { active: true } });
    const trades = syntheticTrades({ start: START, count: 120, seed: 3 });
    await publishTrades(topo.js, EX, sym, trades);
    const stored = async () =>
      (await sys.db.pool.query('SELECT count(*)::int AS n FROM candles WHERE symbol = $1', [sym])).rows[0].n;
    const bars = await eventually(async () => (await stored()) || null, 'RM/USDT bars stored');
    expect(await consumerExists(topo, EX, sym)).toBe(true);

    await createUser(sys.db.pool, 'rm-viewer', 'viewer password', 'viewer');
    await createUser(sys.db.pool, 'rm-trader', 'trader password', 'trader');
    for (const [user, password] of [
      ['rm-viewer', 'viewer password'],
      ['rm-trader', 'trader password'],
    ] as const) {
      const r = await remove(await signIn(sys.base, user, password), sym);
      expect([user, r.status, code(r.body)]).toEqual([user, 403, 'TM_ERR_FORBIDDEN']);
    }
    expect((await rows()).map((r) => r.symbol)).toContain(sym);

    expect((await remove(api, sym)).body).toEqual({ data: { removeSymbol: true } });
    expect((await rows()).map((r) => r.symbol)).not.toContain(sym);
    await eventually(async () => !(await consumerExists(topo, EX, sym)), 'RM/USDT durable deleted');
    expect(await topo.kv.assign.get(actor).then((e) => e?.operation ?? null)).not.toBe('PUT');
    expect(await topo.kv.health.get(actor).then((e) => e?.operation ?? null)).not.toBe('PUT');
    // Idempotent: removing again changes nothing and says so.
    expect((await remove(api, sym)).body).toEqual({ data: { removeSymbol: false } });
    expect(await stored()).toBeGreaterThanOrEqual(bars);
  });

  it('releases the durable on deactivation and recreates it on reactivation; the bars continue exactly', async () => {
    const sym = 'DE/USDT';
    const actor = actorIds.symbol(EX, sym);
    const trades = syntheticTrades({ start: START, count: 240, seed: 11 });
    const closer = { id: '999999', ts: START + 12 * 3600_000, px: trades.at(-1)!.px, qty: 1 };
    const half = 120;
    expect((await add(sym)).data).toEqual({ addSymbol: { active: true } });
    await publishTrades(topo.js, EX, sym, trades.slice(0, half));
    const storedRows = async () =>
      (
        await sys.db.pool.query(
          `SELECT (extract(epoch FROM ts) * 1000)::float8 AS t, open, high, low, close, trades FROM candles
            WHERE exchange = $1 AND symbol = $2 AND timeframe = '1m' ORDER BY ts`,
          [EX, sym],
        )
      ).rows.map((r) => [r.t, r.open, r.high, r.low, r.close, r.trades]);
    await eventually(async () => (await storedRows()).length > 0, 'first DE/USDT bars');

    expect((await setActive(sym, false)).data).toEqual({ setSymbolActive: { active: false } });
    await eventually(async () => !(await consumerExists(topo, EX, sym)), 'DE/USDT durable released');
    // Released only once the actor had stopped: nothing runs that could recreate it.
    expect(await topo.kv.health.get(actor).then((e) => e?.operation ?? null)).not.toBe('PUT');
    expect(await consumerExists(topo, EX, sym)).toBe(false);

    // Trades keep arriving while inactive (TRADES keeps them); reactivation picks them up.
    await publishTrades(topo.js, EX, sym, [...trades.slice(half), closer]);
    expect((await setActive(sym, true)).data).toEqual({ setSymbolActive: { active: true } });
    await eventually(() => consumerExists(topo, EX, sym), 'DE/USDT durable recreated');
    const want = barsFromTrades(EX, sym, '1m', trades).map((b) => [b.t, b.o, b.h, b.l, b.c, b.n]);
    const got = await eventually(async () => {
      const r = await storedRows();
      return r.length >= want.length ? r : null;
    }, 'every DE/USDT bar');
    expect(got.slice(0, want.length)).toEqual(want);
    expect(await consumerExists(topo, EX, 'AAPL')).toBe(true);
  });
});

describe('a durable left behind by a crash', () => {
  it('is released by the next leader; durables of active symbols and other readers stay', async () => {
    const sys = await startSystem({ exchange: { id: EX, symbols: ['AAPL'] }, roles: [] });
    await using topo = await topology(sys.cfg);
    try {
      // What a leader that died between removing an assignment and deleting the durable leaves.
      for (const [name, subject] of [
        [consumers.symbolTrades(EX, 'GONE/USDT'), subjects.trade(EX, 'GONE/USDT')],
        [consumers.symbolTrades(EX, 'AAPL'), subjects.trade(EX, 'AAPL')],
        ['audit_reader', subjects.trade(EX, 'AAPL')],
      ] as const)
        await topo.jsm.consumers.add(STREAMS.trades, { durable_name: name, filter_subject: subject });
      const supervisor = await startSupervisorRole(sys.cfg, testLog);
      try {
        await eventually(
          async () => !(await consumerExists(topo, EX, 'GONE/USDT')),
          'the orphaned durable released',
        );
        expect(await consumerNames(topo)).toEqual(
          ['audit_reader', consumers.symbolTrades(EX, 'AAPL')].sort(),
        );
      } finally {
        await supervisor.stop();
      }
    } finally {
      await sys.stop();
    }
  });
});
