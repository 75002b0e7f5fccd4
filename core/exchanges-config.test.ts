import { describe, expect, it } from 'vitest';
import { parseExchangesFile } from './exchanges-config.ts';

const ccxtFile = (ccxt: string, extra = '') => `
exchanges:
  gw:
    kind: ccxt
    ccxt:
      id: binance
${ccxt
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}
${extra}`;

describe('the ccxt entry of the exchanges file', () => {
  it('takes what pointing ccxt elsewhere needs: urls, rate limit, proxies, extra CA files', () => {
    const f = parseExchangesFile(
      ccxtFile(
        [
          'urls: { api: { public: "http://127.0.0.1:8080/api/v3", ws: { spot: "ws://127.0.0.1:8080/ws" } } }',
          'rateLimitMs: 50',
          'proxy: { https: "http://proxy.local:3128", wsSocks: "socks5://proxy.local:1080" }',
          'caFile: [/etc/ssl/gateway.pem]',
        ].join('\n'),
      ),
    );
    const gw = f.exchanges.gw!;
    if (gw.kind !== 'ccxt') throw new Error('kind');
    expect(gw.ccxt).toMatchObject({
      rateLimitMs: 50,
      proxy: { https: 'http://proxy.local:3128', wsSocks: 'socks5://proxy.local:1080' },
      caFile: ['/etc/ssl/gateway.pem'],
    });
    expect(gw).toMatchObject({ refreshAfterMs: 23 * 3_600_000 + 50 * 60_000, repair: { pageLimit: 1000 } });
  });

  it('refuses proxies ccxt would refuse, naming the field', () => {
    expect(() => parseExchangesFile(ccxtFile('proxy: { http: "ftp://x:21" }'))).toThrow(/proxy\.http/);
    expect(() =>
      parseExchangesFile(ccxtFile('proxy: { http: "http://a:1", socks: "socks5://b:2" }')),
    ).toThrow(/at most one of http, https, socks/);
    expect(() => parseExchangesFile(ccxtFile('proxy: { ws: "http://a:1", wss: "https://b:2" }'))).toThrow(
      /at most one of ws, wss, wsSocks/,
    );
    expect(() => parseExchangesFile(ccxtFile('proxy: { tor: "socks5://a:1" }'))).toThrow(/tor/);
    expect(() => parseExchangesFile(ccxtFile('caFile: []'))).toThrow(/caFile/);
  });

  it('checks the staleness bounds against each other, and allows refresh 0 (never)', () => {
    expect(() => parseExchangesFile(ccxtFile('', '    staleness: { minMs: 9000, maxMs: 8000 }'))).toThrow(
      /minMs must not exceed maxMs/,
    );
    const f = parseExchangesFile(ccxtFile('', '    refreshAfterMs: 0'));
    expect(f.exchanges.gw).toMatchObject({ refreshAfterMs: 0 });
  });
});

describe('the symbols of the exchanges file', () => {
  it('pass the symbol grammar, or the file is refused naming the symbol', () => {
    const file = (symbols: string) => `exchanges:\n  nyse:\n    kind: yahoo\n    symbols: ${symbols}\n`;
    expect(parseExchangesFile(file('[AAPL, BRK-B, "^GSPC", "EURUSD=X"]')).exchanges.nyse?.symbols).toEqual([
      'AAPL',
      'BRK-B',
      '^GSPC',
      'EURUSD=X',
    ]);
    expect(() => parseExchangesFile(file('["AAPL\\u202E"]'))).toThrow(/U\+202E.*nyse\.symbols\[0\]/s);
    expect(() => parseExchangesFile(file('["ВТС/USDT"]'))).toThrow(/U\+0412/);
  });
});
