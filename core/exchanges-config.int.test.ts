import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freshDatabase, type TestDb } from '../test/support/infra.ts';
import { startSystem, type TestSystem } from '../test/support/system.ts';
import { parseExchangesFile, syncExchanges } from './exchanges-config.ts';
import { serviceSubjects } from './protocol/index.ts';

const yaml = (symbols: string[], extra = '') => `
exchanges:
  binance:
    kind: ccxt
    name: Binance
    symbols: [${symbols.join(', ')}]
    ccxt:
      id: binance
      mode: ws${extra}
  nyse:
    kind: yahoo
    symbols: [AAPL, THYAO.IS]
    pollIntervalMs: 30000
`;

describe('exchanges file', () => {
  it('reads YAML and JSON with defaults per adapter kind', () => {
    const f = parseExchangesFile(yaml(['BTC/USDT']));
    const b = f.exchanges.binance!;
    expect(b.kind).toBe('ccxt');
    if (b.kind !== 'ccxt') throw new Error('kind');
    expect(b.ccxt).toMatchObject({ id: 'binance', mode: 'ws', pollIntervalMs: 2000 });
    expect(b.staleness).toEqual({ factor: 10, minMs: 5000, maxMs: 900_000 });
    expect(f.exchanges.nyse).toMatchObject({ kind: 'yahoo', pollIntervalMs: 30000, enabled: true });
    const json = parseExchangesFile(JSON.stringify({ exchanges: { x: { kind: 'external' } } }));
    expect(json.exchanges.x).toEqual({ kind: 'external', enabled: true, symbols: [] });
  });

  it('rejects bad files with errors that name the field', () => {
    expect(() => parseExchangesFile('exchanges: [')).toThrow(/not valid YAML/);
    expect(() => parseExchangesFile('exchanges:\n  Bad-Id:\n    kind: sim\n')).toThrow(/Bad-Id/);
    expect(() => parseExchangesFile('exchanges:\n  b:\n    kind: ftx\n')).toThrow(/kind/);
    expect(() =>
      parseExchangesFile('exchanges:\n  b:\n    kind: ccxt\n    ccxt: { id: binance, mode: fast }\n'),
    ).toThrow(/ccxt\.mode/);
    expect(() =>
      parseExchangesFile('exchanges:\n  b:\n    kind: ccxt\n    ccxt: { id: binance }\n    typo: 1\n'),
    ).toThrow(/typo/);
    expect(() =>
      parseExchangesFile('exchanges:\n  b:\n    kind: replay\n    source: { type: file }\n'),
    ).toThrow(/source\.path/);
    expect(() =>
      parseExchangesFile('exchanges:\n  y:\n    kind: yahoo\n    dataDelayMs: { LSE: 900000 }\n'),
    ).toThrow(/LSE/);
    expect(() =>
      parseExchangesFile('exchanges:\n  y:\n    kind: yahoo\n    dataDelayMs: { BIST: -1 }\n'),
    ).toThrow(/dataDelayMs\.BIST/);
    expect(
      parseExchangesFile('exchanges:\n  y:\n    kind: yahoo\n    dataDelayMs: { BIST: 0 }\n').exchanges.y,
    ).toMatchObject({ dataDelayMs: { BIST: 0 } });
  });

  describe('sync into the database', () => {
    let db: TestDb;
    beforeAll(async () => {
      db = await freshDatabase();
    });
    afterAll(async () => db?.[Symbol.asyncDispose]());

    it('upserts exchanges, adds symbols once and reports only real changes', async () => {
      expect(await syncExchanges(db.pool, parseExchangesFile(yaml(['BTC/USDT'])))).toEqual([
        'binance',
        'nyse',
      ]);
      expect(await syncExchanges(db.pool, parseExchangesFile(yaml(['BTC/USDT'])))).toEqual([]);
      // A symbol deactivated by an operator stays inactive across reloads.
      await db.pool.query(`UPDATE symbols SET active = false WHERE symbol = 'BTC/USDT'`);
      expect(await syncExchanges(db.pool, parseExchangesFile(yaml(['BTC/USDT', 'ETH/USDT'])))).toEqual([
        'binance',
      ]);
      const { rows } = await db.pool.query(
        `SELECT exchange, symbol, active FROM symbols ORDER BY exchange, symbol`,
      );
      expect(rows).toEqual([
        { exchange: 'binance', symbol: 'BTC/USDT', active: false },
        { exchange: 'binance', symbol: 'ETH/USDT', active: true },
        { exchange: 'nyse', symbol: 'AAPL', active: true },
        { exchange: 'nyse', symbol: 'THYAO.IS', active: true },
      ]);
      const ex = await db.pool.query(`SELECT name, kind, options FROM exchanges WHERE id = 'binance'`);
      expect(ex.rows[0]).toMatchObject({ name: 'Binance', kind: 'ccxt' });
      expect(ex.rows[0].options.ccxt.mode).toBe('ws');
      expect(ex.rows[0].options.symbols).toBeUndefined();
    });
  });

  describe('the supervisor applies edits without a restart', () => {
    let sys: TestSystem;
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tickmesh-exchanges-'));
      writeFileSync(
        join(dir, 'exchanges.yaml'),
        'exchanges:\n  feed:\n    kind: external\n    symbols: [A]\n',
      );
      sys = await startSystem({
        roles: ['supervisor'],
        config: { exchangesFile: join(dir, 'exchanges.yaml'), sim: { enabled: false } },
      });
    });
    afterAll(async () => {
      await sys?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('adds the actors of a file edit to the desired set', async () => {
      const desired = async () => {
        const { connectAs } = await import('./nats.ts');
        const nc = await connectAs(sys.cfg, 'operator', 'test');
        try {
          const r = await nc.request(serviceSubjects.role('supervisor', 'status'), '{}', { timeout: 5000 });
          return JSON.parse(r.string()) as { desired: number };
        } finally {
          await nc.close();
        }
      };
      await eventually(
        async () => ((await desired()).desired === 3 ? true : null),
        'writer, alerts, symbol.feed.A',
      );
      writeFileSync(
        join(dir, 'exchanges.yaml'),
        'exchanges:\n  feed:\n    kind: external\n    symbols: [A, B]\n',
      );
      await eventually(async () => ((await desired()).desired === 4 ? true : null), 'symbol B added', 15_000);
      // An invalid edit is refused (logged) and does not stop the watch: the next good edit applies.
      writeFileSync(join(dir, 'exchanges.yaml'), 'exchanges:\n  feed:\n    kind: nonsense\n');
      await new Promise((r) => setTimeout(r, 2500)); // one stat poll sees the broken file
      writeFileSync(
        join(dir, 'exchanges.yaml'),
        'exchanges:\n  feed:\n    kind: external\n    symbols: [A, B, C]\n',
      );
      await eventually(async () => ((await desired()).desired === 5 ? true : null), 'symbol C added', 15_000);
    });
  });
});
