/**
 * Builds the ccxt (pro) instance of a feed from the exchanges file's ccxt entry: the class
 * (websocket or REST), the file's urls, options, rate limit, proxies and extra CA, plus the
 * family's options and the feed's own needs. Everything a user needs to point ccxt elsewhere
 * comes from the file; `configure` is a hook for tests only.
 *
 * What ccxt 4.5.84 needs for that (read from its base Exchange and WsClient):
 * - a plain `ws://` url is refused (NotSupported "run loadHttpProxyAgent()") until the instance
 *   has its plain HTTP agent, which `loadHttpProxyAgent()` creates; it is only ever used for
 *   `ws://` urls, so the feed always runs it (no setting to forget);
 * - REST proxies (`httpProxy`, `httpsProxy`, `socksProxy`) go through undici's ProxyAgent;
 *   websocket proxies (`wsProxy`, `wssProxy`, `wsSocksProxy`) need ccxt's optional
 *   http-proxy-agent / https-proxy-agent / socks-proxy-agent modules (dependencies of tickmesh),
 *   loaded by `loadProxyModules()`;
 * - TLS trust: REST sockets come from undici dispatchers built by `getDispatcherOptions`
 *   (`connect` for the plain agent, `requestTls` behind a proxy); websocket sockets take
 *   `options.ws.options` as `ws` client options (`ca`).
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import ccxt from 'ccxt';
import { ConfigError } from '../../../core/errors.ts';
import type { CcxtExchangeOptions } from '../../../core/exchanges-config.ts';
import { exchangeFamily } from './settings.ts';
import type { CcxtExchange } from './types.ts';

type ExchangeClass = new (cfg: object) => CcxtExchange;

export interface CcxtInstance {
  ex: CcxtExchange;
  /** Trades come over websockets (else REST polling). */
  streaming: boolean;
}

export interface InstanceExtras {
  /** apiKey/secret/password, read by the actor from the environment. */
  credentials?: Record<string, string>;
  /** Where ccxt's own log lines go. */
  log: (...args: unknown[]) => void;
  /** Runs on the new instance before any call (tests only). */
  configure?: (exchange: CcxtExchange) => void;
}

export function createCcxtInstance(o: CcxtExchangeOptions, extras: InstanceExtras): CcxtInstance {
  const id = o.ccxt.id;
  const registry = ccxt as unknown as Record<string, unknown> & { pro: Record<string, unknown> };
  const ProClass = registry.pro[id] as ExchangeClass | undefined;
  const RestClass = registry[id] as ExchangeClass | undefined;
  if (typeof RestClass !== 'function' || !(registry.exchanges as string[]).includes(id))
    throw new ConfigError(`ccxt feed: unknown ccxt exchange ${JSON.stringify(id)}`);
  const wantWs = o.ccxt.mode !== 'poll' && ProClass !== undefined;
  if (o.ccxt.mode === 'ws' && !wantWs)
    throw new ConfigError(`ccxt feed: ${id} has no websocket support in ccxt.pro`);
  const ca = extraCa(o.ccxt.caFile);
  const userWs = (o.ccxt.options.ws ?? {}) as { options?: object };
  const Cls = wantWs ? ProClass! : RestClass;
  const ex = new Cls({
    ...extras.credentials,
    ...(o.ccxt.urls ? { urls: o.ccxt.urls } : {}),
    ...(o.ccxt.rateLimitMs ? { rateLimit: o.ccxt.rateLimitMs } : {}),
    ...proxySettings(o.ccxt.proxy),
    enableRateLimit: true,
    // ccxt only logs frames it cannot parse: the feed counts them and keeps ccxt's output in its log.
    log: extras.log,
    options: {
      ...exchangeFamily(id).ccxtOptions,
      ...o.ccxt.options,
      ws: {
        ...userWs,
        ...(ca ? { options: { ...userWs.options, ca } } : {}),
        // The feed's reconnect backoff runs on the Clock; ccxt's own (real-time) delay would stack on it.
        backoff: { max: 0 },
      },
    },
  });
  if (ca) trustForRest(ex, ca);
  extras.configure?.(ex);
  const streaming = wantWs && ex.has.watchTradesForSymbols === true && ex.has.watchTrades === true;
  if (o.ccxt.mode === 'ws' && !streaming) throw new ConfigError(`ccxt feed: ${id} cannot watch trades`);
  return { ex, streaming };
}

/** What the instance needs before its first call (async parts of ccxt's transport set-up). */
export async function prepareTransport(ex: CcxtExchange, o: CcxtExchangeOptions): Promise<void> {
  await ex.loadHttpProxyAgent?.();
  const proxy = o.ccxt.proxy;
  // ccxt loads its proxy agent modules on the first REST call; a dial must not come first.
  if (proxy?.ws || proxy?.wss || proxy?.wsSocks) await ex.loadProxyModules?.();
}

function proxySettings(p: CcxtExchangeOptions['ccxt']['proxy']): Record<string, string> {
  if (!p) return {};
  const out: Record<string, string> = {};
  if (p.http) out.httpProxy = p.http;
  if (p.https) out.httpsProxy = p.https;
  if (p.socks) out.socksProxy = p.socks;
  if (p.ws) out.wsProxy = p.ws;
  if (p.wss) out.wssProxy = p.wss;
  if (p.wsSocks) out.wsSocksProxy = p.wsSocks;
  return out;
}

/** The system's CAs plus the file's (a `ca` option replaces Node's defaults, so both go in). */
function extraCa(files: string | string[] | undefined): string[] | undefined {
  if (files === undefined) return undefined;
  const pems = (Array.isArray(files) ? files : [files]).map((path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new ConfigError(`ccxt feed: cannot read the CA file ${path}: ${(e as Error).message}`);
    }
  });
  return [...rootCertificates, ...pems];
}

/** Makes ccxt's undici dispatchers (plain and behind a proxy) trust `ca`. */
function trustForRest(ex: CcxtExchange, ca: string[]): void {
  const target = ex as unknown as { getDispatcherOptions(plain?: boolean): Record<string, unknown> };
  const own = target.getDispatcherOptions.bind(target);
  target.getDispatcherOptions = (plain = false) => {
    const options = own(plain);
    const key = plain ? 'connect' : 'requestTls';
    options[key] = { ...(options[key] as object | undefined), ca };
    return options;
  };
}
