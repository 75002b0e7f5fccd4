/**
 * A local fake of the Yahoo Finance endpoints that yahoo-finance2 (v3) really calls, so tests
 * run the real library against it:
 *
 * - `GET https://query{1,2}.finance.yahoo.com/v8/finance/chart/<symbol>?period1&period2&interval…`
 *   (chart(): no crumb needed) answers like Yahoo's v8 chart JSON: `meta` (currency, exchange,
 *   time zone, regularMarketPrice, currentTradingPeriod, tradingPeriods…), `timestamp[]` in epoch
 *   seconds and `indicators.quote[0].{open,high,low,close,volume}` with nulls where the series
 *   has them. Completed minutes up to the fake's now, plus Yahoo's forming last minute: partial
 *   values stamped with the current second (not minute-aligned), as Yahoo does. Delayed markets
 *   (Borsa Istanbul: 15 min, as `exchangeDataDelayedBy` says) are served as of that long ago,
 *   so their forming minute is the one 15 minutes back (`realTime` turns the delay off).
 * - the crumb dance of quote(): `GET https://finance.yahoo.com/quote/AAPL` (redirect: manual)
 *   sets the A1/A3 session cookies (or, with `consent: true`, redirects through the EU consent
 *   pages on guce.yahoo.com / consent.yahoo.com first), then
 *   `GET https://query1.finance.yahoo.com/v1/test/getcrumb` returns the crumb as text.
 *   `fc.yahoo.com` (the cookie source other clients use) sets the same cookies.
 * - `GET https://query2.finance.yahoo.com/v7/finance/quote?symbols=…&crumb=…` (quote()) demands
 *   a crumb it issued plus its session cookie, else 401 "Invalid Crumb" as Yahoo answers.
 *
 * `fetch` rewrites yahoo.com URLs to the fake on 127.0.0.1 (keeping the original host in a
 * header) and refuses every other host, so a test can never reach the internet. Pass it as
 * `new YahooFinance({ fetch })`, or use `client()`, which also gives the instance its own
 * cookie jar and a silent logger, and forgets yahoo-finance2's process-wide cached crumb.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import YahooFinance from 'yahoo-finance2';
import { ExtendedCookieJar } from 'yahoo-finance2/lib/cookieJar';
import { getCrumbClear } from 'yahoo-finance2/lib/getCrumb';
import {
  type Calendar,
  calendarForSymbol,
  calendarTimeZone,
  exchangeDate,
  marketState,
  type Session,
  tradingDay,
  zonedTime,
  zoneOffset,
} from '../../core/market-hours.ts';

/** One 1m candle of a fake series: open time in epoch ms (minute-aligned); nulls as Yahoo has them. */
export interface FakeCandle {
  t: number;
  o: number | null;
  h: number | null;
  l: number | null;
  c: number | null;
  vol: number | null;
}

export interface FakeYahooRequest {
  /** The fake's now when the request arrived. */
  at: number;
  method: string;
  host: string;
  path: string;
  query: Record<string, string>;
  symbol?: string;
  /** What the fake answered. */
  status: number;
}

export interface FakeYahooCounters {
  requests: number;
  chart: number;
  quote: number;
  cookie: number;
  consent: number;
  crumb: number;
  failed5xx: number;
  rateLimited: number;
  malformed: number;
  chartBySymbol: Record<string, number>;
}

export interface FakeYahoo {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** A fetch that sends yahoo.com requests to the fake and refuses any other host. */
  readonly fetch: typeof fetch;
  /** Replaces a symbol's 1m series; what has "happened" is the prefix up to the fake's now. */
  setSeries(symbol: string, candles: readonly FakeCandle[]): void;
  /** Moves the fake's now (without a `now` option). */
  advanceTo(ts: number): void;
  now(): number;
  readonly controls: {
    /** The next n data requests (chart, quote) fail with 502/503. */
    fail5xx(n: number): void;
    /** The next n data requests get 429 with `Retry-After: retryAfterSec`. */
    rateLimit(n: number, retryAfterSec: number): void;
    /** The next n data requests get a 200 with a broken body (truncated JSON, then schema-invalid). */
    malformed(n: number): void;
  };
  readonly counters: FakeYahooCounters;
  readonly requests: readonly FakeYahooRequest[];
  /** A yahoo-finance2 client on this fake: own cookie jar, silent logger, no version check. */
  client(): InstanceType<typeof YahooFinance>;
  close(): Promise<void>;
}

export interface FakeYahooOptions {
  /** The fake's clock (e.g. a FakeClock's now); without it `advanceTo` moves an internal time. */
  now?: () => number;
  /** Start of the internal time. */
  start?: number;
  /** Send the crumb flow through the EU consent pages (guce/consent.yahoo.com). */
  consent?: boolean;
  /** Serve every market without Yahoo's delay (as a real-time data subscription would). */
  realTime?: boolean;
}

const MINUTE = 60_000;
const YAHOO_HOST = /(^|\.)yahoo\.com$/i;
const ORIGINAL_HOST = 'x-fake-yahoo-host';
const VALID_RANGES = ['1d', '5d', '1mo', '3mo', '6mo', 'ytd', '1y', '2y', '5y', '10y', 'max'];
/** Yahoo serves at most 8 days of 1m data per request. */
const MAX_1M_SPAN_S = 8 * 86_400;

interface Instrument {
  calendar: Calendar;
  currency: string;
  exchange: string;
  fullExchangeName: string;
  instrumentType: 'EQUITY' | 'CRYPTOCURRENCY';
  market: string;
  region: string;
  delayMin: number;
}

function instrumentOf(symbol: string): Instrument {
  const calendar = calendarForSymbol(symbol);
  if (calendar === 'BIST')
    return {
      calendar,
      currency: 'TRY',
      exchange: 'IST',
      fullExchangeName: 'Istanbul',
      instrumentType: 'EQUITY',
      market: 'tr_market',
      region: 'TR',
      delayMin: 15,
    };
  if (calendar === '24x7')
    return {
      calendar,
      currency: symbol.split('-').at(-1) ?? 'USD',
      exchange: 'CCC',
      fullExchangeName: 'CCC',
      instrumentType: 'CRYPTOCURRENCY',
      market: 'ccc_market',
      region: 'US',
      delayMin: 0,
    };
  return {
    calendar,
    currency: 'USD',
    exchange: 'NMS',
    fullExchangeName: 'NasdaqGS',
    instrumentType: 'EQUITY',
    market: 'us_market',
    region: 'US',
    delayMin: 0,
  };
}

function zoneAbbreviation(calendar: Calendar, at: number): string {
  if (calendar === 'BIST') return 'TRT';
  if (calendar === '24x7') return 'UTC';
  return zoneOffset('America/New_York', at) === -4 * 3_600_000 ? 'EDT' : 'EST';
}

const token = (n: number) => randomBytes(n).toString('base64url');

export async function startFakeYahoo(opts: FakeYahooOptions = {}): Promise<FakeYahoo> {
  let internalNow = opts.start ?? 0;
  const now = opts.now ?? (() => internalNow);
  const series = new Map<string, FakeCandle[]>();
  const sessions = new Set<string>(); // A3 cookie values issued
  const crumbs = new Map<string, string>(); // crumb → A3 session
  const consentSessions = new Map<string, string>(); // consent session id → csrf token
  const consented = new Set<string>(); // GUC cookie values issued
  const pending = { fail5xx: 0, rateLimit: 0, retryAfterSec: 0, malformed: 0 };
  const counters: FakeYahooCounters = {
    requests: 0,
    chart: 0,
    quote: 0,
    cookie: 0,
    consent: 0,
    crumb: 0,
    failed5xx: 0,
    rateLimited: 0,
    malformed: 0,
    chartBySymbol: {},
  };
  const requests: FakeYahooRequest[] = [];

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      res.statusCode = 500;
      res.end(`fake-yahoo: ${(e as Error).message}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = String(req.headers[ORIGINAL_HOST] ?? '').toLowerCase();
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const body = await readBody(req);
    counters.requests++;
    const entry: FakeYahooRequest = {
      at: now(),
      method: req.method ?? 'GET',
      host,
      path: url.pathname,
      query,
      status: 0,
    };
    requests.push(entry);
    const cookies = parseCookies(req.headers.cookie);
    const send = (status: number, payload: string, headers: Record<string, string | string[]> = {}) => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(payload);
    };
    const json = (status: number, value: unknown, headers: Record<string, string | string[]> = {}) =>
      send(status, JSON.stringify(value), { 'content-type': 'application/json;charset=utf-8', ...headers });

    // ---- cookies, consent and crumb
    if (host === 'fc.yahoo.com' || (host === 'finance.yahoo.com' && req.method === 'GET')) {
      if (opts.consent && host === 'finance.yahoo.com' && !consented.has(cookies.GUC ?? '')) {
        counters.consent++;
        const done = encodeURIComponent(`https://finance.yahoo.com${url.pathname}`);
        return send(302, '', {
          location: `https://guce.yahoo.com/consent?brandType=eu&gcrumb=${token(6)}&lang=en-GB&done=${done}`,
          'set-cookie': `GUCS=${token(6)}; Max-Age=1800; Domain=.yahoo.com; Path=/; Secure`,
        });
      }
      counters.cookie++;
      const a3 = `d=AQABBK${token(24)}&S=AQAAA${token(16)}`;
      sessions.add(a3);
      const attrs = 'Max-Age=31557600; Domain=.yahoo.com; Path=/; Secure; SameSite=None';
      return send(
        host === 'fc.yahoo.com' ? 404 : 200,
        '<!doctype html><html><body>Yahoo Finance</body></html>',
        {
          'content-type': 'text/html; charset=utf-8',
          'set-cookie': [
            `A1=${a3}; ${attrs}; HttpOnly`,
            `A3=${a3}; ${attrs}; HttpOnly`,
            `A1S=${a3}; ${attrs}`,
          ],
        },
      );
    }
    if (host === 'guce.yahoo.com' && url.pathname === '/consent') {
      const sessionId = `3_cc-session_${token(12)}`;
      consentSessions.set(sessionId, token(8));
      return send(302, '', {
        location: `https://consent.yahoo.com/v2/collectConsent?sessionId=${sessionId}`,
      });
    }
    if (host === 'consent.yahoo.com' && url.pathname === '/v2/collectConsent') {
      const sessionId = query.sessionId ?? '';
      const csrf = consentSessions.get(sessionId);
      if (!csrf) return send(400, 'unknown consent session');
      if (req.method === 'GET') {
        const hidden = (name: string, value: string) =>
          `<input type="hidden" name="${name}" value="${value}">`;
        return send(
          200,
          `<html><body><form method="post" action="/v2/collectConsent?sessionId=${sessionId}">${hidden('csrfToken', csrf)}${hidden('sessionId', sessionId)}${hidden('originalDoneUrl', 'https://finance.yahoo.com/quote/AAPL?guccounter=1')}${hidden('namespace', 'yahoo')}<button name="agree" value="agree">Accept all</button></form></body></html>`,
          { 'content-type': 'text/html; charset=utf-8' },
        );
      }
      const form = new URLSearchParams(body);
      if (form.get('csrfToken') !== csrf || form.get('agree') !== 'agree')
        return send(400, 'bad consent form');
      return send(302, '', {
        location: `https://guce.yahoo.com/copyConsent?sessionId=${sessionId}&lang=en-GB`,
        'set-cookie': `CFC=${token(12)}; Max-Age=31557600; Domain=consent.yahoo.com; Path=/; Secure`,
      });
    }
    if (host === 'guce.yahoo.com' && url.pathname === '/copyConsent') {
      if (!consentSessions.delete(query.sessionId ?? '')) return send(400, 'unknown consent session');
      const guc = `AQEBCAFn${token(12)}`;
      consented.add(guc);
      return send(302, '', {
        location: 'https://finance.yahoo.com/quote/AAPL?guccounter=1',
        'set-cookie': `GUC=${guc}; Max-Age=31557600; Domain=.yahoo.com; Path=/; Secure`,
      });
    }
    const isQuery = /^query[12]\.finance\.yahoo\.com$/.test(host);
    if (isQuery && url.pathname === '/v1/test/getcrumb') {
      const session = cookies.A3;
      if (!session || !sessions.has(session)) return send(401, 'Unauthorized');
      counters.crumb++;
      const crumb = token(8);
      crumbs.set(crumb, session);
      return send(200, crumb, { 'content-type': 'text/plain;charset=utf-8' });
    }

    // ---- data endpoints
    const chartMatch = /^\/v8\/finance\/chart\/([^/]+)$/.exec(url.pathname);
    const isQuote = url.pathname === '/v7/finance/quote';
    if (!isQuery || (!chartMatch && !isQuote)) return send(404, 'fake-yahoo: no such endpoint');
    const symbol = chartMatch ? decodeURIComponent(chartMatch[1]!) : undefined;
    if (symbol) {
      entry.symbol = symbol;
      counters.chart++;
      counters.chartBySymbol[symbol] = (counters.chartBySymbol[symbol] ?? 0) + 1;
    } else counters.quote++;

    if (pending.fail5xx > 0) {
      pending.fail5xx--;
      counters.failed5xx++;
      // Yahoo's edge answers 502 with HTML; its API 503 with an error object.
      if (counters.failed5xx % 2 === 1)
        return send(502, '<html><body><h1>502 Bad Gateway</h1></body></html>', {
          'content-type': 'text/html',
        });
      return json(503, {
        [symbol ? 'chart' : 'finance']: {
          result: null,
          error: { code: 'Service Unavailable', description: 'Service Unavailable' },
        },
      });
    }
    if (pending.rateLimit > 0) {
      pending.rateLimit--;
      counters.rateLimited++;
      return send(429, 'Too Many Requests\r\n', {
        'content-type': 'text/html; charset=utf-8',
        'retry-after': String(pending.retryAfterSec),
      });
    }
    if (pending.malformed > 0) {
      pending.malformed--;
      counters.malformed++;
      if (counters.malformed % 2 === 1)
        return send(200, '{"chart":{"result":[{"meta":{"currency":"USD","sym', {
          'content-type': 'application/json;charset=utf-8',
        });
      // Valid JSON that fails yahoo-finance2's schema: a meta without its required fields.
      return json(200, {
        chart: { result: [{ meta: { symbol }, indicators: { quote: [{}] } }], error: null },
      });
    }

    if (isQuote) {
      const crumb = query.crumb ?? '';
      if (!crumbs.has(crumb) || crumbs.get(crumb) !== cookies.A3)
        return json(401, {
          finance: { result: null, error: { code: 'Unauthorized', description: 'Invalid Crumb' } },
        });
      const symbols = (query.symbols ?? '').split(',').filter(Boolean);
      return json(200, { quoteResponse: { result: symbols.map(quoteOf), error: null } });
    }

    if (query.interval !== '1m')
      return json(400, {
        chart: {
          result: null,
          error: {
            code: 'Bad Request',
            description: `Invalid input - interval=${query.interval} (the fake serves 1m)`,
          },
        },
      });
    const candles = series.get(symbol!);
    if (!candles)
      return json(404, {
        chart: {
          result: null,
          error: { code: 'Not Found', description: 'No data found, symbol may be delisted' },
        },
      });
    const p1 = Number(query.period1);
    const p2 = Number(query.period2);
    if (!Number.isFinite(p1) || !Number.isFinite(p2))
      return json(400, {
        chart: {
          result: null,
          error: { code: 'Bad Request', description: 'Invalid input - period1/period2' },
        },
      });
    if (p2 - p1 > MAX_1M_SPAN_S)
      return json(422, {
        chart: {
          result: null,
          error: {
            code: 'Unprocessable Entity',
            description: `1m data not available for startTime=${p1} and endTime=${p2}. Only 8 days worth of 1m granularity data are allowed to be fetched per request.`,
          },
        },
      });
    return json(200, {
      chart: { result: [chartOf(symbol!, candles, p1, p2, query.includePrePost !== 'false')], error: null },
    });
  }

  /** The session that Yahoo's currentTradingPeriod describes at an instant: today's, else the next. */
  function currentSession(cal: Calendar, at: number): Session {
    const today = tradingDay(cal, exchangeDate(cal, at));
    if (today.trading) return today.session;
    const next = tradingDay(cal, exchangeDate(cal, marketState(cal, at).nextOpen));
    if (!next.trading) throw new Error('fake-yahoo: no session');
    return next.session;
  }

  function periodsOf(cal: Calendar, s: Session, at: number) {
    const tz = zoneAbbreviation(cal, at);
    const gmtoffset = zoneOffset(calendarTimeZone(cal), at) / 1000;
    const p = (start: number, end: number) => ({
      timezone: tz,
      start: start / 1000,
      end: end / 1000,
      gmtoffset,
    });
    if (cal === 'NYSE' || cal === 'NASDAQ') {
      const [y, m, d] = s.date.split('-').map(Number) as [number, number, number];
      const day = { y, m, d };
      return {
        pre: p(zonedTime('America/New_York', day, 4, 0), s.open),
        regular: p(s.open, s.close),
        post: p(s.close, zonedTime('America/New_York', day, 20, 0)),
      };
    }
    // Markets without extended hours: Yahoo shows empty pre/post periods at the session's edges.
    return { pre: p(s.open, s.open), regular: p(s.open, s.close), post: p(s.close, s.close) };
  }

  function chartOf(symbol: string, candles: readonly FakeCandle[], p1: number, p2: number, prePost: boolean) {
    const inst = instrumentOf(symbol);
    // A delayed market's data (and its forming minute) is as of `delayMin` ago.
    const real = now();
    const at = real - (opts.realTime ? 0 : inst.delayMin * MINUTE);
    const cal = inst.calendar;
    const keep = (t: number) => t >= p1 * 1000 && t < p2 * 1000 && (prePost || marketState(cal, t).open);
    const timestamp: number[] = [];
    const q = { open: [] as (number | null)[], high: [] as (number | null)[], low: [] as (number | null)[] };
    const close: (number | null)[] = [];
    const volume: (number | null)[] = [];
    const push = (
      ts: number,
      o: number | null,
      h: number | null,
      l: number | null,
      c: number | null,
      v: number | null,
    ) => {
      timestamp.push(ts);
      q.open.push(o);
      q.high.push(h);
      q.low.push(l);
      close.push(c);
      volume.push(v);
    };
    let last: number | undefined;
    for (const k of candles) {
      if (k.t > at || !keep(k.t)) continue;
      if (k.t + MINUTE <= at) {
        push(k.t / 1000, k.o, k.h, k.l, k.c, k.vol);
      } else if (k.o === null || k.c === null || k.h === null || k.l === null) {
        push(Math.floor(at / 1000), null, null, null, null, null);
      } else {
        // The forming minute: what has traded so far, stamped with the current second.
        const f = (at - k.t) / MINUTE;
        const c = k.o + (k.c - k.o) * f;
        push(Math.floor(at / 1000), k.o, Math.max(k.o, c), Math.min(k.o, c), c, Math.floor((k.vol ?? 0) * f));
      }
      if (close.at(-1) != null) last = close.at(-1)!;
    }
    const session = currentSession(cal, real);
    const periods = periodsOf(cal, session, real);
    const days: ReturnType<typeof periodsOf>[] = [];
    for (let d = p1 * 1000; d < Math.min(p2 * 1000, real + 86_400_000); d += 86_400_000) {
      const td = tradingDay(cal, exchangeDate(cal, d));
      if (td.trading && !days.some((x) => x.regular.start === td.session.open / 1000))
        days.push(periodsOf(cal, td.session, d));
    }
    const prices = close.filter((x): x is number => x !== null);
    const tz = calendarTimeZone(cal);
    const meta = {
      currency: inst.currency,
      symbol,
      exchangeName: inst.exchange,
      fullExchangeName: inst.fullExchangeName,
      instrumentType: inst.instrumentType,
      firstTradeDate: 345479400,
      regularMarketTime: Math.floor(at / 1000),
      hasPrePostMarketData: cal === 'NYSE' || cal === 'NASDAQ',
      gmtoffset: zoneOffset(tz, real) / 1000,
      timezone: zoneAbbreviation(cal, real),
      exchangeTimezoneName: tz,
      regularMarketPrice: last ?? candles.find((k) => k.c !== null)?.c ?? 0,
      fiftyTwoWeekHigh: prices.length ? Math.max(...prices) : 0,
      fiftyTwoWeekLow: prices.length ? Math.min(...prices) : 0,
      regularMarketDayHigh: prices.length ? Math.max(...prices) : 0,
      regularMarketDayLow: prices.length ? Math.min(...prices) : 0,
      regularMarketVolume: volume.reduce<number>((a, v) => a + (v ?? 0), 0),
      longName: `${symbol} Fake Inc.`,
      shortName: `${symbol} Fake`,
      chartPreviousClose: prices[0] ?? 0,
      previousClose: prices[0] ?? 0,
      scale: 3,
      priceHint: 2,
      currentTradingPeriod: periods,
      tradingPeriods: prePost
        ? {
            pre: days.map((d) => [d.pre]),
            regular: days.map((d) => [d.regular]),
            post: days.map((d) => [d.post]),
          }
        : days.map((d) => [d.regular]),
      dataGranularity: '1m',
      range: '',
      validRanges: VALID_RANGES,
    };
    // Without data Yahoo leaves out `timestamp` and sends one empty quote object.
    if (timestamp.length === 0) return { meta, indicators: { quote: [{}] } };
    return { meta, timestamp, indicators: { quote: [{ ...q, close, volume }] } };
  }

  function quoteOf(symbol: string) {
    const inst = instrumentOf(symbol);
    const at = now();
    const candles = series.get(symbol) ?? [];
    const done = candles.filter((k) => k.t + MINUTE <= at && k.c !== null);
    const price = done.at(-1)?.c ?? candles.find((k) => k.c !== null)?.c ?? 0;
    const state = marketState(inst.calendar, at);
    const tz = calendarTimeZone(inst.calendar);
    return {
      language: 'en-US',
      region: inst.region,
      quoteType: inst.instrumentType,
      typeDisp: inst.instrumentType === 'EQUITY' ? 'Equity' : 'Cryptocurrency',
      quoteSourceName: inst.delayMin ? 'Delayed Quote' : 'Nasdaq Real Time Price',
      triggerable: true,
      customPriceAlertConfidence: 'HIGH',
      currency: inst.currency,
      marketState: state.open ? 'REGULAR' : 'CLOSED',
      tradeable: false,
      cryptoTradeable: inst.instrumentType === 'CRYPTOCURRENCY',
      exchange: inst.exchange,
      shortName: `${symbol} Fake`,
      longName: `${symbol} Fake Inc.`,
      exchangeTimezoneName: tz,
      exchangeTimezoneShortName: zoneAbbreviation(inst.calendar, at),
      gmtOffSetMilliseconds: zoneOffset(tz, at),
      market: inst.market,
      esgPopulated: false,
      regularMarketPrice: price,
      regularMarketTime: Math.floor((done.at(-1)?.t ?? at) / 1000),
      regularMarketVolume: done.reduce((a, k) => a + (k.vol ?? 0), 0),
      priceHint: 2,
      sourceInterval: 15,
      exchangeDataDelayedBy: inst.delayMin,
      fullExchangeName: inst.fullExchangeName,
      firstTradeDateMilliseconds: 345479400000,
      hasPrePostMarketData: inst.calendar === 'NYSE',
      symbol,
    };
  }

  const fakeFetch = async (
    input: string | URL | Request,
    init?: RequestInit,
    hops = 0,
  ): Promise<Response> => {
    const original = new URL(input instanceof Request ? input.url : String(input));
    if (!YAHOO_HOST.test(original.hostname))
      throw new TypeError(
        `fake-yahoo: refusing a request to ${original.host} (only yahoo.com goes to the fake)`,
      );
    const headers = new Headers(init?.headers);
    headers.set(ORIGINAL_HOST, original.hostname);
    // Never let the runtime follow a redirect: its Location points at yahoo.com, i.e. the internet.
    const res = await fetch(`${base}${original.pathname}${original.search}`, {
      ...init,
      headers,
      redirect: 'manual',
    });
    const location = res.headers.get('location');
    if ((init?.redirect ?? 'follow') === 'follow' && res.status >= 300 && res.status < 400 && location) {
      if (hops >= 5) throw new TypeError('fake-yahoo: too many redirects');
      await res.arrayBuffer();
      return fakeFetch(
        new URL(location, original).href,
        { ...init, method: 'GET', body: undefined },
        hops + 1,
      );
    }
    return res;
  };

  return {
    url: base,
    fetch: fakeFetch as typeof fetch,
    setSeries(symbol, candles) {
      series.set(
        symbol,
        [...candles].sort((a, b) => a.t - b.t),
      );
    },
    advanceTo(ts) {
      if (opts.now) throw new Error('fake-yahoo: time follows the `now` option');
      internalNow = ts;
    },
    now,
    controls: {
      fail5xx(n) {
        pending.fail5xx = n;
      },
      rateLimit(n, retryAfterSec) {
        pending.rateLimit = n;
        pending.retryAfterSec = retryAfterSec;
      },
      malformed(n) {
        pending.malformed = n;
      },
    },
    counters,
    requests,
    client() {
      const quiet = { info() {}, warn() {}, error() {}, debug() {}, dir() {} };
      const cookieJar = new ExtendedCookieJar();
      // yahoo-finance2 keeps the crumb (and a failed crumb fetch's rejected promise) in module
      // state shared by every instance; a crumb issued by an earlier fake would be sent here.
      void getCrumbClear(cookieJar);
      return new YahooFinance({
        fetch: fakeFetch as typeof fetch,
        cookieJar,
        logger: quiet,
        suppressNotices: ['yahooSurvey'],
        // A failed validation would otherwise ask registry.npmjs.org for the latest version.
        versionCheck: false,
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
