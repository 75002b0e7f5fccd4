import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../core/errors.ts';
import { type CcxtExchangeOptions, parseStoredOptions } from '../../../core/exchanges-config.ts';
import { createCcxtInstance, prepareTransport } from './ccxt-instance.ts';

function entry(ccxt: Record<string, unknown>): CcxtExchangeOptions {
  const o = parseStoredOptions('ccxt', { ccxt: { id: 'binance', ...ccxt } });
  if (o.kind !== 'ccxt') throw new Error('kind');
  return o;
}

const log = () => {};
type Inside = Record<string, unknown> & {
  options: { ws: { options?: { ca?: string[] }; backoff: unknown }; watchTrades: unknown };
  urls: { api: Record<string, unknown> & { ws: Record<string, unknown> } };
  getDispatcherOptions(plain?: boolean): { connect?: { ca?: string[] }; requestTls?: { ca?: string[] } };
};

describe('createCcxtInstance', () => {
  it('merges the file urls over ccxt own, with the family options and the rate limit', () => {
    const { ex, streaming } = createCcxtInstance(
      entry({ urls: { api: { ws: { spot: 'ws://127.0.0.1:9/ws' } } }, rateLimitMs: 7 }),
      { log },
    );
    const inside = ex as unknown as Inside;
    expect(streaming).toBe(true);
    expect(inside.urls.api.ws.spot).toBe('ws://127.0.0.1:9/ws');
    expect(inside.urls.api.ws.future).toMatch(/^wss:/); // ccxt's own, kept
    expect(inside.rateLimit).toBe(7);
    expect(inside.options.watchTrades).toEqual({ name: 'aggTrade' });
    expect(inside.options.ws.backoff).toEqual({ max: 0 });
  });

  it('hands the proxies to ccxt under its own names', () => {
    const { ex } = createCcxtInstance(entry({ proxy: { https: 'http://p:3128', wss: 'http://p:3128' } }), {
      log,
    });
    const inside = ex as unknown as Inside;
    expect([inside.httpsProxy, inside.wssProxy, inside.httpProxy]).toEqual([
      'http://p:3128',
      'http://p:3128',
      undefined,
    ]);
  });

  it('trusts the extra CA files besides the system CAs, for REST and websockets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tm-ca-'));
    const pem = '-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'ca.pem'), pem);
    const { ex } = createCcxtInstance(entry({ caFile: join(dir, 'ca.pem') }), { log });
    const inside = ex as unknown as Inside;
    const wsCa = inside.options.ws.options?.ca ?? [];
    expect(wsCa).toContain(pem);
    expect(wsCa.length).toBeGreaterThan(1); // the system's too
    expect(inside.getDispatcherOptions(true).connect?.ca).toEqual(wsCa);
    expect(inside.getDispatcherOptions(false).requestTls?.ca).toEqual(wsCa);
    expect(() => createCcxtInstance(entry({ caFile: join(dir, 'missing.pem') }), { log })).toThrow(
      /cannot read the CA file/,
    );
  });

  it('refuses an unknown exchange, or ws mode where ccxt cannot stream', () => {
    expect(() => createCcxtInstance(entry({ id: 'nosuchexchange' }), { log })).toThrow(ConfigError);
    expect(() => createCcxtInstance(entry({ id: 'btcbox', mode: 'ws' }), { log })).toThrow(/websocket/);
  });
});

describe('prepareTransport', () => {
  it('gives ccxt the plain HTTP agent that ws:// urls need', async () => {
    const o = entry({});
    const { ex } = createCcxtInstance(o, { log });
    expect(ex.httpAgent).toBeUndefined();
    await prepareTransport(ex, o);
    expect(ex.httpAgent).toBeDefined();
  });

  it('loads the agent module of a websocket proxy before the first dial', async () => {
    for (const [proxy, module] of [
      [{ ws: 'http://p:3128' }, 'httpProxyAgentModule'],
      [{ wss: 'http://p:3128' }, 'httpsProxyAgentModule'],
      [{ wsSocks: 'socks5://p:1080' }, 'socksProxyAgentModule'],
    ] as const) {
      const o = entry({ proxy });
      const { ex } = createCcxtInstance(o, { log });
      await prepareTransport(ex, o);
      expect((ex as unknown as Record<string, unknown>)[module]).toBeDefined();
    }
  });
});
