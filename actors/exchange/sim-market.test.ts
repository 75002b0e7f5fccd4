import { describe, expect, it } from 'vitest';
import { SimMarket } from './sim-market.ts';

describe('SimMarket', () => {
  it('is reproducible: the same seed gives the same trades however they are batched', () => {
    const a = new SimMarket(42, 'BTC/USDT');
    const b = new SimMarket(42, 'BTC/USDT');
    const whole = a.next(100, 0, 100_000);
    const parts = [...b.next(30, 0, 30_000), ...b.next(70, 30_000, 100_000)];
    expect(parts.map((t) => [t.id, t.px, t.qty, t.side])).toEqual(
      whole.map((t) => [t.id, t.px, t.qty, t.side]),
    );
  });

  it('resumes from a cursor exactly where an uninterrupted market would be', () => {
    const full = new SimMarket(7, 'ETH/USDT').next(50, 0, 50_000);
    const first = new SimMarket(7, 'ETH/USDT');
    first.next(20, 0, 20_000);
    const resumed = new SimMarket(7, 'ETH/USDT', first.cursor).next(30, 20_000, 50_000);
    expect(resumed.map((t) => [t.id, t.px])).toEqual(full.slice(20).map((t) => [t.id, t.px]));
  });

  it('differs between seeds and symbols, and produces valid trades in time order', () => {
    const x = new SimMarket(1, 'AAPL').next(200, 1000, 2000);
    const y = new SimMarket(2, 'AAPL').next(200, 1000, 2000);
    const z = new SimMarket(1, 'MSFT').next(200, 1000, 2000);
    expect(x.map((t) => t.px)).not.toEqual(y.map((t) => t.px));
    expect(x.map((t) => t.px)).not.toEqual(z.map((t) => t.px));
    for (let i = 0; i < x.length; i++) {
      const t = x[i]!;
      expect(t.px).toBeGreaterThan(0);
      expect(t.qty).toBeGreaterThanOrEqual(0);
      if (i > 0) expect(t.ts).toBeGreaterThanOrEqual(x[i - 1]!.ts);
    }
    expect(x.at(-1)!.ts).toBe(2000);
  });
});
