/**
 * Data quality end to end: deliberately bad trades mixed into a good sequence (price spikes,
 * zero, negative and null prices, a NaN that makes its frame malformed JSON, a timestamp before
 * 2000, timestamps hours in the future, a 1000× volume) are all quarantined — published to
 * md.quarantine.<ex>.<sym> and counted in the metrics — while the stored bars equal the bars of
 * the good trades alone, and `data_quality_metrics` gets per-check counts and a score in [0, 1].
 *
 * Default configuration throughout: the volume check flags trades 100× the rolling mean amount
 * and quarantines those above 500× (real markets print the odd 100–250× block trade).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barsFromTrades } from '../analytics/bar-builder.ts';
import type { Config } from '../core/config.ts';
import { metrics } from '../core/metrics.ts';
import {
  bucketStart,
  encodeJson,
  msgIds,
  SCHEMA_VERSION,
  subjects,
  TIMEFRAMES,
  type Trade,
} from '../core/protocol/index.ts';
import { eventually, topology } from './support/infra.ts';
import { startSystem, storedBars, type TestSystem } from './support/system.ts';
import { syntheticTrades } from './support/trades.ts';

const EX = 'test';
const SYM = 'QUAL/USDT';
const START = Date.UTC(2024, 4, 6, 0, 0, 0);

type Kind = 'spike' | 'dip' | 'zero' | 'negative' | 'null' | 'nan' | 'epoch' | 'future' | 'volume';

/** What each kind of bad trade must be quarantined as (the message's `reason`). */
const REASON: Record<Kind, RegExp> = {
  spike: /^quality jump: /,
  dip: /^quality jump: /,
  zero: /^px must be a finite number > 0$/,
  negative: /^px must be a finite number > 0$/,
  null: /^px must be a finite number > 0$/,
  nan: /^not JSON: /,
  epoch: /^quality invalid: /,
  future: /^quality future: /,
  volume: /^quality volume: /,
};

interface Message {
  /** The JSON text as published (a NaN frame is not valid JSON). */
  text: string;
  msgId: string;
}

/**
 * The good trades in batches of 25, with a bad trade put into some of them at a position of its
 * own; the NaN trade travels alone (a malformed frame loses everything in it).
 */
function mixedMessages(good: readonly Trade[]): { messages: Message[]; bad: { kind: Kind; id: string }[] } {
  const plan: [number, Kind][] = [
    [3, 'spike'],
    [5, 'zero'],
    [8, 'future'],
    [11, 'volume'],
    [14, 'negative'],
    [17, 'spike'],
    [20, 'nan'],
    [23, 'null'],
    [27, 'epoch'],
    [31, 'dip'],
    [36, 'future'],
    [44, 'spike'],
    [52, 'volume'],
    [60, 'spike'],
  ];
  const messages: Message[] = [];
  const bad: { kind: Kind; id: string }[] = [];
  const body = (trades: unknown[]) =>
    // Past trades replayed from a file: freshness is not in question here.
    JSON.stringify({ v: SCHEMA_VERSION, ex: EX, sym: SYM, source: 'replay', trades });
  for (let i = 0, batch = 0; i < good.length; i += 25, batch++) {
    const chunk: unknown[] = good.slice(i, i + 25);
    const idOf = (x: unknown) => (x as Trade).id;
    let msgId = msgIds.trades(EX, SYM, idOf(chunk[0]), idOf(chunk.at(-1)));
    for (const [at, kind] of plan.filter(([b]) => b === batch)) {
      const id = `bad-${kind}-${batch}`;
      bad.push({ kind, id });
      const pos = 7 + (batch % 11);
      const prev = chunk[pos - 1] as Trade;
      const trade = { id, ts: prev.ts, px: prev.px, qty: 0.5, side: 'buy' };
      if (kind === 'spike') trade.px = Number((prev.px * 1.5).toFixed(4));
      if (kind === 'dip') trade.px = Number((prev.px * 0.6).toFixed(4));
      if (kind === 'zero') trade.px = 0;
      if (kind === 'negative') trade.px = -prev.px;
      if (kind === 'epoch') trade.ts = 0;
      if (kind === 'future') trade.ts = Date.now() + 3 * 3_600_000;
      if (kind === 'volume') trade.qty = 1000;
      if (kind === 'null') (trade as { px: unknown }).px = null;
      if (kind === 'nan') {
        messages.push({ text: body([trade]).replace(`"px":${trade.px}`, '"px":NaN'), msgId: `nan-${at}` });
        continue;
      }
      chunk.splice(pos, 0, trade);
      msgId = `${msgId}+${id}`;
    }
    messages.push({ text: body(chunk), msgId });
  }
  return { messages, bad };
}

describe('data quality end to end', () => {
  let sys: TestSystem;
  let db: TestSystem['db'];
  let cfg: Config;

  beforeAll(async () => {
    sys = await startSystem({
      exchange: { id: EX, symbols: [SYM] },
      roles: ['supervisor', 'worker'],
    });
    ({ db, cfg } = sys);
  });

  afterAll(async () => sys?.stop());

  it('quarantines every bad trade and builds the bars of the good ones only', async () => {
    await using topo = await topology(cfg);
    await eventually(async () => {
      const e = await topo.kv.health.get('symbol.test.QUAL-USDT');
      return e?.operation === 'PUT' && e.string().includes('"status":"running"');
    }, 'symbol actor running');
    const quarantined: { reason: string; payload: unknown }[] = [];
    const sub = topo.nc.subscribe(subjects.quarantine(EX, SYM), {
      callback: (_e, m) => void quarantined.push(m.json()),
    });
    await topo.nc.flush();

    const good = syntheticTrades({ start: START, count: 2000, seed: 4242 });
    const last = good.at(-1)!;
    // Six hours later: closes every bar up to 4h (its own bars stay forming and are left out).
    const closer: Trade = {
      id: 'closer',
      ts: bucketStart(last.ts + 6 * 3_600_000, '4h'),
      px: last.px,
      qty: 1,
    };
    const { messages, bad } = mixedMessages(good);
    expect(new Set(bad.map((b) => b.kind)).size).toBe(Object.keys(REASON).length);
    for (const m of messages) {
      const ack = await topo.js.publish(subjects.trade(EX, SYM), new TextEncoder().encode(m.text), {
        msgID: m.msgId,
      });
      expect(ack.duplicate).toBe(false);
    }
    await topo.js.publish(
      subjects.trade(EX, SYM),
      encodeJson({ v: 1, ex: EX, sym: SYM, source: 'replay', trades: [closer] }),
      {
        msgID: 'closer',
      },
    );

    // Every bad trade on the quarantine subject, once, with the reason of its check.
    await eventually(async () => quarantined.length >= bad.length, `${bad.length} quarantined trades`);
    const idOf = (q: { payload: unknown }): string => {
      const p = q.payload as { id?: string } | string;
      return typeof p === 'string' ? (/"id":"([^"]+)"/.exec(p)?.[1] ?? '?') : (p?.id ?? '?');
    };
    const got = quarantined.map((q) => ({ id: idOf(q), reason: q.reason }));
    expect(got.map((q) => q.id).sort()).toEqual(bad.map((b) => b.id).sort());
    for (const b of bad) expect(got.find((q) => q.id === b.id)?.reason).toMatch(REASON[b.kind]);

    // The stored bars are those of the good trades alone, at every timeframe.
    for (const tf of TIMEFRAMES.filter((t) => t !== '1d')) {
      const want = barsFromTrades(EX, SYM, tf, good);
      const before = bucketStart(closer.ts, tf);
      const rows = await eventually(async () => {
        const r = (await storedBars(db.pool, tf, EX, SYM)).filter((b) => b.t < before);
        return r.length >= want.length ? r : null;
      }, `${tf} bars`);
      expect(rows.map((r) => r.t)).toEqual(want.map((b) => b.t));
      rows.forEach((r, i) => {
        const b = want[i]!;
        expect({ ...r, volume: Number(r.volume.toFixed(6)) }).toEqual({
          t: b.t,
          open: b.o,
          high: b.h,
          low: b.l,
          close: b.c,
          volume: Number(b.vol.toFixed(6)),
          trades: b.n,
          gap: b.gap,
        });
      });
    }

    // Per-check counts in data_quality_metrics: every judged trade, once.
    const judged = good.length + 1 + bad.filter((b) => b.kind.match(/spike|dip|epoch|future|volume/)).length;
    const totals = await eventually(async () => {
      const { rows } = await db.pool.query<{
        trades: number;
        accepted: number;
        checks: Record<string, Record<string, number>>;
        score: number;
      }>(
        `SELECT trades, accepted, checks, score FROM data_quality_metrics WHERE exchange = $1 AND symbol = $2`,
        [EX, SYM],
      );
      const sum = rows.reduce((n, r) => n + r.trades, 0);
      return sum >= judged ? rows : null;
    }, 'quality reports of every judged trade');
    expect(totals.reduce((n, r) => n + r.trades, 0)).toBe(judged);
    expect(totals.reduce((n, r) => n + r.accepted, 0)).toBe(good.length + 1);
    const perCheck = (check: string, outcome: string) =>
      totals.reduce((n, r) => n + (r.checks[check]?.[outcome] ?? 0), 0);
    const count = (re: RegExp) => bad.filter((b) => re.test(b.kind)).length;
    expect({
      jump: perCheck('jump', 'quarantined'),
      future: perCheck('future', 'quarantined'),
      volume: perCheck('volume', 'quarantined'),
      invalid: perCheck('invalid', 'quarantined'),
      stale: perCheck('stale', 'quarantined') + perCheck('stale', 'flagged'),
    }).toEqual({
      jump: count(/spike|dip/),
      future: count(/future/),
      volume: count(/volume/),
      invalid: 1,
      stale: 0,
    });
    for (const r of totals) expect(r.score >= 0 && r.score <= 1).toBe(true);
    // The score dropped with the bad trades and recovered towards 1 with good ones after them.
    expect(Math.min(...totals.map((r) => r.score))).toBeLessThan(1);
    expect(totals.every((r) => r.score > 0.5)).toBe(true);

    // The same counts in the metrics of this process (the worker runs here).
    const sum = async (
      metric: typeof metrics.quarantined | typeof metrics.qualityChecks,
      match: Record<string, string>,
    ) =>
      (await metric.get()).values
        .filter((v) => {
          const labels: Partial<Record<string, string | number>> = v.labels;
          return Object.entries(match).every(([k, want]) => labels[k] === want);
        })
        .reduce((n, v) => n + v.value, 0);
    expect(await sum(metrics.quarantined, { source: 'symbol', reason: 'quality jump' })).toBe(
      count(/spike|dip/),
    );
    expect(await sum(metrics.quarantined, { source: 'symbol', reason: 'not JSON' })).toBe(1);
    expect(
      await sum(metrics.quarantined, { source: 'symbol', reason: 'px must be a finite number > 0' }),
    ).toBe(3);
    expect(await sum(metrics.qualityChecks, { symbol: SYM, check: 'future', outcome: 'quarantined' })).toBe(
      count(/future/),
    );
    expect(await sum(metrics.qualityChecks, { symbol: SYM, check: 'volume', outcome: 'quarantined' })).toBe(
      count(/volume/),
    );
    expect(await sum(metrics.quarantined, { source: 'symbol' })).toBe(bad.length);
    sub.unsubscribe();
  });
});
