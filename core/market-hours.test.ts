import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Calendar,
  calendarForSymbol,
  easterSunday,
  exchangeDate,
  marketState,
  tradingDay,
  zonedTime,
} from './market-hours.ts';

const utc = (iso: string) => Date.parse(iso);

/** Weekday dates of a year on which the calendar is closed all day. */
function holidays(cal: Calendar, y: number): string[] {
  const out: string[] = [];
  for (let t = Date.UTC(y, 0, 1); t < Date.UTC(y + 1, 0, 1); t += 86_400_000) {
    const date = new Date(t).toISOString().slice(0, 10);
    const td = tradingDay(cal, date);
    if (!td.trading && td.reason === 'holiday') out.push(date);
  }
  return out;
}

function halfDays(cal: Calendar, y: number): string[] {
  const out: string[] = [];
  for (let t = Date.UTC(y, 0, 1); t < Date.UTC(y + 1, 0, 1); t += 86_400_000) {
    const td = tradingDay(cal, new Date(t).toISOString().slice(0, 10));
    if (td.trading && td.session.early) out.push(td.session.date);
  }
  return out;
}

describe('NYSE regular sessions across DST', () => {
  it('opens 09:30 and closes 16:00 New York time, EDT and EST', () => {
    // 2025-03-11 (EDT, UTC-4): 13:30Z – 20:00Z.
    expect(marketState('NYSE', utc('2025-03-11T13:29:59Z'))).toEqual({
      open: false,
      reason: 'before-open',
      nextOpen: utc('2025-03-11T13:30:00Z'),
    });
    expect(marketState('NYSE', utc('2025-03-11T13:30:00Z'))).toEqual({
      open: true,
      closesAt: utc('2025-03-11T20:00:00Z'),
      nextOpen: utc('2025-03-12T13:30:00Z'),
    });
    expect(marketState('NYSE', utc('2025-03-11T20:00:00Z'))).toMatchObject({
      open: false,
      reason: 'after-close',
    });
    // 2025-01-14 (EST, UTC-5): 14:30Z – 21:00Z.
    expect(marketState('NYSE', utc('2025-01-14T14:29:00Z')).open).toBe(false);
    expect(marketState('NYSE', utc('2025-01-14T14:30:00Z')).closesAt).toBe(utc('2025-01-14T21:00:00Z'));
  });

  it('reopens on the Monday after the spring-forward Sunday at the new offset', () => {
    // Friday 2025-03-07 closes at 21:00Z (EST); clocks go forward Sunday 2025-03-09.
    const friday = marketState('NYSE', utc('2025-03-07T21:05:00Z'));
    expect(friday).toEqual({ open: false, reason: 'after-close', nextOpen: utc('2025-03-10T13:30:00Z') });
    expect(marketState('NYSE', utc('2025-03-09T12:00:00Z'))).toEqual({
      open: false,
      reason: 'weekend',
      nextOpen: utc('2025-03-10T13:30:00Z'),
    });
  });

  it('reopens on the Monday after the fall-back Sunday at the new offset', () => {
    // Friday 2025-10-31 closes at 20:00Z (EDT); clocks go back Sunday 2025-11-02.
    expect(marketState('NYSE', utc('2025-10-31T20:00:00Z')).nextOpen).toBe(utc('2025-11-03T14:30:00Z'));
    expect(marketState('NYSE', utc('2025-11-03T14:29:59Z')).reason).toBe('before-open');
    expect(marketState('NASDAQ', utc('2025-11-03T14:30:00Z')).open).toBe(true);
  });

  it('is closed on weekends', () => {
    expect(marketState('NYSE', utc('2025-03-08T15:00:00Z'))).toEqual({
      open: false,
      reason: 'weekend',
      nextOpen: utc('2025-03-10T13:30:00Z'),
    });
  });
});

describe('NYSE holidays and early closes', () => {
  it('matches the published 2025, 2026 and 2027 holiday lists', () => {
    expect(holidays('NYSE', 2025)).toEqual([
      '2025-01-01',
      '2025-01-09', // National Day of Mourning for President Carter
      '2025-01-20',
      '2025-02-17',
      '2025-04-18',
      '2025-05-26',
      '2025-06-19',
      '2025-07-04',
      '2025-09-01',
      '2025-11-27',
      '2025-12-25',
    ]);
    expect(holidays('NYSE', 2026)).toEqual([
      '2026-01-01',
      '2026-01-19',
      '2026-02-16',
      '2026-04-03',
      '2026-05-25',
      '2026-06-19',
      '2026-07-03', // July 4 is a Saturday
      '2026-09-07',
      '2026-11-26',
      '2026-12-25',
    ]);
    expect(holidays('NYSE', 2027)).toEqual([
      '2027-01-01',
      '2027-01-18',
      '2027-02-15',
      '2027-03-26',
      '2027-05-31',
      '2027-06-18', // Juneteenth is a Saturday
      '2027-07-05', // July 4 is a Sunday
      '2027-09-06',
      '2027-11-25',
      '2027-12-24', // Christmas is a Saturday
    ]);
    // New Year's Day 2028 is a Saturday: NYSE does not close on Friday 2027-12-31.
    expect(tradingDay('NYSE', '2027-12-31').trading).toBe(true);
  });

  it('applies the observed-date rules and the New Year exception', () => {
    expect(tradingDay('NYSE', '2021-12-31').trading).toBe(true); // 2022-01-01 was a Saturday
    expect(tradingDay('NYSE', '2023-01-02')).toMatchObject({ trading: false, reason: 'holiday' });
    expect(tradingDay('NYSE', '2022-06-20')).toMatchObject({ trading: false, reason: 'holiday' });
    expect(tradingDay('NYSE', '2021-06-18').trading).toBe(true); // before Juneteenth was a market holiday
    expect(tradingDay('NYSE', '2021-12-24')).toMatchObject({ trading: false, reason: 'holiday' });
    expect(tradingDay('NYSE', '2022-12-26')).toMatchObject({ trading: false, reason: 'holiday' });
  });

  it('closes at 13:00 on July 3, the day after Thanksgiving and Christmas Eve', () => {
    expect(halfDays('NYSE', 2024)).toEqual(['2024-07-03', '2024-11-29', '2024-12-24']);
    expect(halfDays('NYSE', 2025)).toEqual(['2025-07-03', '2025-11-28', '2025-12-24']);
    // 2026: July 3 is the observed holiday, so July 2 is a full day.
    expect(halfDays('NYSE', 2026)).toEqual(['2026-11-27', '2026-12-24']);
    // 2022: July 3 and Christmas Eve fall on weekends.
    expect(halfDays('NYSE', 2022)).toEqual(['2022-11-25']);
    // 2021: Christmas Eve (Friday) is the observed holiday.
    expect(halfDays('NYSE', 2021)).toEqual(['2021-11-26']);
  });

  it('reports the early close while open and after it', () => {
    // 2025-07-03, 13:00 EDT = 17:00Z.
    expect(marketState('NYSE', utc('2025-07-03T16:59:00Z'))).toEqual({
      open: true,
      closesAt: utc('2025-07-03T17:00:00Z'),
      nextOpen: utc('2025-07-07T13:30:00Z'),
    });
    expect(marketState('NYSE', utc('2025-07-03T17:00:00Z'))).toEqual({
      open: false,
      reason: 'early-close',
      nextOpen: utc('2025-07-07T13:30:00Z'),
    });
    // 2024-12-24, 13:00 EST = 18:00Z.
    expect(marketState('NYSE', utc('2024-12-24T17:59:00Z')).closesAt).toBe(utc('2024-12-24T18:00:00Z'));
  });

  it('is closed on a holiday, with the next open after it', () => {
    expect(marketState('NYSE', utc('2025-07-04T15:00:00Z'))).toEqual({
      open: false,
      reason: 'holiday',
      nextOpen: utc('2025-07-07T13:30:00Z'),
    });
    // Good Friday 2025, then the weekend.
    expect(marketState('NYSE', utc('2025-04-17T20:30:00Z')).nextOpen).toBe(utc('2025-04-21T13:30:00Z'));
    expect(marketState('NYSE', utc('2025-04-18T15:00:00Z')).reason).toBe('holiday');
  });

  it('computes Easter', () => {
    const key = (y: number) => {
      const e = easterSunday(y);
      return `${e.y}-${String(e.m).padStart(2, '0')}-${String(e.d).padStart(2, '0')}`;
    };
    expect([2000, 2019, 2024, 2025, 2026, 2027, 2038].map(key)).toEqual([
      '2000-04-23',
      '2019-04-21',
      '2024-03-31',
      '2025-04-20',
      '2026-04-05',
      '2027-03-28',
      '2038-04-25',
    ]);
  });
});

describe('BIST', () => {
  it('trades 10:00–18:00 Istanbul time (UTC+3 all year)', () => {
    expect(marketState('BIST', utc('2025-03-11T06:59:00Z'))).toEqual({
      open: false,
      reason: 'before-open',
      nextOpen: utc('2025-03-11T07:00:00Z'),
    });
    expect(marketState('BIST', utc('2025-03-11T07:00:00Z'))).toEqual({
      open: true,
      closesAt: utc('2025-03-11T15:00:00Z'),
      nextOpen: utc('2025-03-12T07:00:00Z'),
    });
    // Summer: New York and Europe moved their clocks, Istanbul did not.
    expect(marketState('BIST', utc('2025-07-10T14:59:00Z')).open).toBe(true);
    expect(marketState('BIST', utc('2025-07-10T15:00:00Z')).reason).toBe('after-close');
    expect(marketState('BIST', utc('2025-03-15T10:00:00Z')).reason).toBe('weekend');
  });

  it('knows the fixed holidays and the Republic Day half day', () => {
    expect(holidays('BIST', 2025)).toEqual([
      '2025-01-01',
      '2025-03-31',
      '2025-04-01',
      '2025-04-23',
      '2025-05-01',
      '2025-05-19',
      '2025-06-06',
      '2025-06-09',
      '2025-07-15',
      '2025-10-29',
    ]);
    expect(halfDays('BIST', 2025)).toEqual(['2025-06-05', '2025-10-28']);
  });

  it('closes at 12:30 on a feast eve and stays closed through the feast', () => {
    // 2025-06-05: Sacrifice Feast eve; 2025-06-06 … 09 closed.
    expect(marketState('BIST', utc('2025-06-05T09:29:00Z'))).toEqual({
      open: true,
      closesAt: utc('2025-06-05T09:30:00Z'),
      nextOpen: utc('2025-06-10T07:00:00Z'),
    });
    expect(marketState('BIST', utc('2025-06-05T09:30:00Z'))).toEqual({
      open: false,
      reason: 'early-close',
      nextOpen: utc('2025-06-10T07:00:00Z'),
    });
    expect(marketState('BIST', utc('2025-06-09T08:00:00Z')).reason).toBe('holiday');
    // 2026 Ramadan Feast: eve Thursday 19 March, feast from Friday.
    expect(tradingDay('BIST', '2026-03-19')).toMatchObject({ trading: true, session: { early: true } });
    expect(tradingDay('BIST', '2026-03-20')).toMatchObject({ trading: false, reason: 'holiday' });
    expect(tradingDay('BIST', '2024-04-09')).toMatchObject({ trading: true, session: { early: true } });
    expect(tradingDay('BIST', '2027-05-17')).toMatchObject({ trading: false, reason: 'holiday' });
    // Administrative leave added to a feast is not a BIST holiday.
    expect(tradingDay('BIST', '2025-04-02').trading).toBe(true);
  });
});

describe('24x7 and symbols', () => {
  it('is always open', () => {
    const at = utc('2025-12-25T03:00:00Z');
    expect(marketState('24x7', at)).toEqual({ open: true, nextOpen: at });
  });

  it('maps symbols to calendars', () => {
    expect(calendarForSymbol('THYAO.IS')).toBe('BIST');
    expect(calendarForSymbol('AAPL')).toBe('NYSE');
    expect(calendarForSymbol('BRK-B')).toBe('NYSE');
    expect(calendarForSymbol('BTC-USD')).toBe('24x7');
    expect(calendarForSymbol('ETH-USDT')).toBe('24x7');
    expect(calendarForSymbol('BTC/USDT', 'binance')).toBe('24x7');
  });

  it('converts local times and dates', () => {
    expect(zonedTime('America/New_York', { y: 2025, m: 3, d: 10 }, 9, 30)).toBe(utc('2025-03-10T13:30:00Z'));
    expect(exchangeDate('NYSE', utc('2025-03-11T02:00:00Z'))).toBe('2025-03-10');
    expect(exchangeDate('BIST', utc('2025-03-10T22:00:00Z'))).toBe('2025-03-11');
  });
});

describe('consistency', () => {
  it('closed → the next open is open and the instant before it closed; open → closes later', () => {
    const calendars: Calendar[] = ['NYSE', 'BIST'];
    fc.assert(
      fc.property(
        fc.integer({ min: utc('2024-01-01T00:00:00Z'), max: utc('2027-12-20T00:00:00Z') }),
        fc.constantFrom(...calendars),
        (at, cal) => {
          const s = marketState(cal, at);
          expect(s.nextOpen).toBeGreaterThan(at);
          expect(marketState(cal, s.nextOpen).open).toBe(true);
          expect(marketState(cal, s.nextOpen - 1).open).toBe(false);
          if (s.open) {
            expect(s.closesAt).toBeGreaterThan(at);
            expect(marketState(cal, s.closesAt! - 1).open).toBe(true);
            expect(marketState(cal, s.closesAt!).open).toBe(false);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
