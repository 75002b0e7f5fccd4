import { describe, expect, it } from 'vitest';
import { decodeJson, encodeJson, validateBar, validateTradeBatch } from './messages.ts';

describe('trade batch validator', () => {
  it('keeps good trades and rejects bad ones individually', () => {
    const r = validateTradeBatch({
      v: 1,
      ex: 'sim',
      sym: 'BTC/USDT',
      trades: [
        { id: '1', ts: 1000, px: 10, qty: 1, side: 'buy' },
        { id: '2', ts: 1001, px: 0, qty: 1 },
        { id: '3', ts: 1002, px: Number.NaN, qty: 1 },
        { id: '4', ts: 1003, px: 10, qty: -1 },
        { id: '', ts: 1003, px: 10, qty: 1 },
        { id: '6', ts: 1.5, px: 10, qty: 1 },
        { id: '7', ts: 1004, px: 11, qty: 0 },
      ],
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.batch.trades.map((t) => t.id)).toEqual(['1', '7']);
    expect(r.value.rejected.map((x) => x.reason)).toEqual([
      'px must be a finite number > 0',
      'px must be a finite number > 0',
      'qty must be a finite number >= 0',
      'id must be a non-empty string',
      'ts must be an integer epoch ms',
    ]);
  });

  it.each([
    [null, 'not an object'],
    [{ v: 2, ex: 'a', sym: 'b', trades: [] }, 'version'],
    [{ v: 1, ex: 'a', sym: 'b', trades: [] }, 'non-empty'],
    [{ v: 1, ex: 1, sym: 'b', trades: [{}] }, 'strings'],
  ])('rejects envelope %j', (input, msg) => {
    const r = validateTradeBatch(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(msg);
  });
});

describe('bar validator', () => {
  const bar = {
    v: 1,
    ex: 'sim',
    sym: 'X',
    tf: '1m',
    t: 0,
    o: 2,
    h: 3,
    l: 1,
    c: 2,
    vol: 5,
    n: 3,
    closed: true,
    rev: 0,
    gap: 0,
    ft: 1,
    lt: 2,
  };
  it('accepts a sane bar and rejects OHLC disorder and unknown timeframes', () => {
    expect(validateBar(bar).ok).toBe(true);
    expect(validateBar({ ...bar, h: 1.5 })).toEqual({ ok: false, error: 'OHLC out of order' });
    expect(validateBar({ ...bar, tf: '2m' }).ok).toBe(false);
    expect(validateBar({ ...bar, vol: Number.POSITIVE_INFINITY }).ok).toBe(false);
  });
});

describe('codec', () => {
  it('never throws on garbage', () => {
    expect(decodeJson(new TextEncoder().encode('{nope')).ok).toBe(false);
    expect(decodeJson(encodeJson({ a: 1 }))).toEqual({ ok: true, value: { a: 1 } });
  });
});

describe('validateFeedMessage', () => {
  it('tells trade batches, source bars and gap marks apart and quarantines bad bars one by one', async () => {
    const { validateFeedMessage } = await import('./messages.ts');
    const t = Date.UTC(2024, 0, 2, 15, 0);
    const bars = validateFeedMessage({
      v: 1,
      ex: 'yahoo',
      sym: 'AAPL',
      bars: [
        { t, o: 1, h: 2, l: 0.5, c: 1.5, vol: 10 },
        { t: t + 1, o: 1, h: 2, l: 0.5, c: 1.5, vol: 10 },
        { t, o: 3, h: 2, l: 0.5, c: 1.5, vol: 10 },
      ],
    });
    expect(bars.ok && bars.value.kind === 'bars' && bars.value.batch.bars.length).toBe(1);
    expect(bars.ok && bars.value.kind === 'bars' && bars.value.rejected.map((r) => r.reason)).toEqual([
      't must be minute-aligned',
      'OHLC out of order or not positive',
    ]);
    const gap = validateFeedMessage({ v: 1, ex: 'b', sym: 'X', gap: { from: 1, to: 2, reason: 'history' } });
    expect(gap.ok && gap.value.kind).toBe('gap');
    expect(validateFeedMessage({ v: 1, ex: 'b', sym: 'X', gap: { from: 2, to: 1, reason: '' } }).ok).toBe(
      false,
    );
    const trades = validateFeedMessage({
      v: 1,
      ex: 'b',
      sym: 'X',
      trades: [{ id: '1', ts: 1, px: 1, qty: 1 }],
    });
    expect(trades.ok && trades.value.kind).toBe('trades');
  });
});

describe('symbol snapshot validator', () => {
  const ohlcv = { t: 0, o: 2, h: 3, l: 1, c: 2, vol: 5, n: 3, ft: 1, lt: 2 };
  const snapshot = {
    v: 1,
    seq: 42,
    state: {
      ex: 'sim',
      sym: 'X',
      forming: [{ ...ohlcv, t: 120_000 }],
      agg: { '5m': ohlcv },
      watermark: 60_000,
      exClock: 121_000,
      recent1m: [{ bar: { ...ohlcv, inc: true }, rev: 1, gap: 0 }],
      lastClosed: { '1h': { bar: ohlcv, rev: 0, gap: 2 } },
      recentIds: ['a', 'b'],
      idHead: 1,
    },
    analytics: { analytics: { v: 1 }, reported: {} },
  };

  it('accepts a snapshot and reads a null watermark as -Infinity', async () => {
    const { validateSymbolSnapshot } = await import('./messages.ts');
    expect(validateSymbolSnapshot(snapshot)).toEqual({ ok: true, value: snapshot });
    const empty = { ...snapshot, state: { ...snapshot.state, watermark: null } };
    const r = validateSymbolSnapshot(empty);
    expect(r.ok && r.value.state.watermark).toBe(Number.NEGATIVE_INFINITY);
  });

  it.each([
    ['another version', { ...snapshot, v: 2 }],
    ['a fractional seq', { ...snapshot, seq: 1.5 }],
    ['no state', { ...snapshot, state: undefined }],
    ['a 1m aggregate', { ...snapshot, state: { ...snapshot.state, agg: { '1m': ohlcv } } }],
    [
      'a bar without close',
      { ...snapshot, state: { ...snapshot.state, forming: [{ ...ohlcv, c: undefined }] } },
    ],
    ['an unknown field', { ...snapshot, state: { ...snapshot.state, extra: true } }],
    ['ids that are not strings', { ...snapshot, state: { ...snapshot.state, recentIds: [1] } }],
  ])('rejects %s', async (_what, input) => {
    const { validateSymbolSnapshot } = await import('./messages.ts');
    expect(validateSymbolSnapshot(input).ok).toBe(false);
  });
});

describe('actor spec', () => {
  // As the supervisor writes them into KV actor-assign (the wire format before the union).
  const wire = [
    { id: 'writer', kind: 'writer' },
    { id: 'alerts.dispatcher', kind: 'alerts' },
    { id: 'symbol.sim.BTC-USDT', kind: 'symbol', exchange: 'sim', symbol: 'BTC/USDT' },
    { id: 'exchange.sim', kind: 'exchange', exchange: 'sim', exchangeKind: 'sim', symbols: ['BTC/USDT'] },
    {
      id: 'exchange.binance',
      kind: 'exchange',
      exchange: 'binance',
      exchangeKind: 'ccxt',
      symbols: ['BTC/USDT'],
      options: { ccxt: { id: 'binance' } },
    },
  ];

  it('parses the stored JSON unchanged, field order included', async () => {
    const { actorSpecSchema } = await import('./messages.ts');
    for (const spec of wire) {
      const parsed = actorSpecSchema.parse(JSON.parse(JSON.stringify(spec)));
      expect(JSON.stringify(parsed)).toBe(JSON.stringify(spec));
    }
  });

  it('requires the fields of its kind and no others', async () => {
    const { actorSpecSchema } = await import('./messages.ts');
    const bad = [
      { id: 'symbol.sim.X', kind: 'symbol', exchange: 'sim' },
      { id: 'exchange.sim', kind: 'exchange', exchange: 'sim', symbols: [] },
      { id: 'writer', kind: 'writer', exchange: 'sim' },
      { id: 'x', kind: 'strategy' },
    ];
    for (const spec of bad) expect(actorSpecSchema.safeParse(spec).success, JSON.stringify(spec)).toBe(false);
  });
});
