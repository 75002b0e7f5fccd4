/**
 * Exchange trading calendars: is a market open at an instant, and when does it next open.
 *
 * Wall-clock times are converted with Intl.DateTimeFormat in the exchange's time zone, so DST
 * switches need no table. Holidays:
 * - NYSE/NASDAQ (the two share one schedule): the holiday and early-close rules of NYSE Rule 7.2
 *   as published on nyse.com ("Holidays & Trading Hours"), computed for any year, plus a short
 *   table of unscheduled closures (national days of mourning, storms), which has to be extended
 *   by hand when one happens.
 * - BIST (Borsa Istanbul, equity market): Turkey's fixed public holidays, and the Ramadan and
 *   Sacrifice feasts from the explicit table below (2024–2027), taken from Borsa Istanbul's
 *   published official-holiday calendars. The feasts follow the lunar calendar: the table must
 *   be extended every year from BIST's calendar (borsaistanbul.com, "Official Holidays"); outside
 *   the table the feasts are unknown and those days count as trading days. Government
 *   "administrative leave" days that lengthen a feast are not BIST holidays (BIST trades then).
 */
import { BadArgumentError, InvariantError, shownInput } from './errors.ts';

export type Calendar = 'NYSE' | 'NASDAQ' | 'BIST' | '24x7';
export type ClosedReason = 'weekend' | 'holiday' | 'before-open' | 'after-close' | 'early-close';

export interface MarketState {
  open: boolean;
  /** Why the market is closed; absent while open. `early-close`: after a half day's close. */
  reason?: ClosedReason;
  /**
   * Epoch ms of the next regular-session open. While open, the open of the following session.
   * For 24x7 it is `at` itself.
   */
  nextOpen: number;
  /** While open: epoch ms of this session's close (13:00 ET / 12:30 Istanbul on half days). */
  closesAt?: number;
}

/** One trading day's regular session, epoch ms. */
export interface Session {
  /** Exchange-local date, YYYY-MM-DD. */
  date: string;
  open: number;
  close: number;
  /** A half day (early close). */
  early: boolean;
}

export type TradingDay =
  | { trading: true; session: Session; holiday?: string }
  | { trading: false; reason: 'weekend' | 'holiday'; holiday?: string };

interface CalendarRules {
  timeZone: string;
  open: [number, number];
  close: [number, number];
  earlyClose: [number, number];
  /** Holidays (closed all day) and half days of one year, keyed YYYY-MM-DD. */
  year(y: number): Map<string, DayRule>;
}

interface DayRule {
  name: string;
  kind: 'closed' | 'half';
}

// ---------------------------------------------------------------- civil dates

export interface Ymd {
  y: number;
  m: number; // 1-12
  d: number;
}

const DAY_MS = 86_400_000;

const ymdKey = ({ y, m, d }: Ymd): string =>
  `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;

function parseYmd(s: string): Ymd {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!match) throw new BadArgumentError('date', `${shownInput(s)} is not a YYYY-MM-DD date`);
  return { y: Number(match[1]), m: Number(match[2]), d: Number(match[3]) };
}

/** 0 = Sunday … 6 = Saturday. */
const weekday = ({ y, m, d }: Ymd): number => new Date(Date.UTC(y, m - 1, d)).getUTCDay();

function addDays({ y, m, d }: Ymd, n: number): Ymd {
  const t = new Date(Date.UTC(y, m - 1, d) + n * DAY_MS);
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** The n-th (1-based) given weekday of a month; n = -1 for the last one. */
function nthWeekday(y: number, m: number, dow: number, n: number): Ymd {
  if (n > 0) {
    const first = weekday({ y, m, d: 1 });
    return { y, m, d: 1 + ((dow - first + 7) % 7) + (n - 1) * 7 };
  }
  const lastDay = new Date(Date.UTC(y, m, 0)).getUTCDate();
  const last = weekday({ y, m, d: lastDay });
  return { y, m, d: lastDay - ((last - dow + 7) % 7) };
}

/** Gregorian Easter Sunday (the anonymous "Meeus/Jones/Butcher" computus). */
export function easterSunday(y: number): Ymd {
  const a = y % 19;
  const b = Math.floor(y / 100);
  const c = y % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const mm = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * mm + 114) / 31);
  const day = ((h + l - 7 * mm + 114) % 31) + 1;
  return { y, m: month, d: day };
}

// ---------------------------------------------------------------- time zones

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock fields of an instant in a time zone. */
export function zonedParts(
  timeZone: string,
  at: number,
): Ymd & { hour: number; minute: number; second: number } {
  const out: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(at)) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return {
    y: out.year!,
    m: out.month!,
    d: out.day!,
    hour: out.hour! % 24,
    minute: out.minute!,
    second: out.second!,
  };
}

/** Offset of the zone from UTC at an instant, ms (New York in summer: -4 h). */
export function zoneOffset(timeZone: string, at: number): number {
  const p = zonedParts(timeZone, at);
  const asUtc = Date.UTC(p.y, p.m - 1, p.d, p.hour, p.minute, p.second);
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** The instant at which a zone's wall clock shows the given local date and time. */
export function zonedTime(timeZone: string, date: Ymd, hour: number, minute: number): number {
  const guess = Date.UTC(date.y, date.m - 1, date.d, hour, minute);
  let t = guess - zoneOffset(timeZone, guess);
  const second = guess - zoneOffset(timeZone, t);
  if (second !== t) t = second;
  return t;
}

// ---------------------------------------------------------------- NYSE / NASDAQ

/** Unscheduled full-day closures (days of mourning, weather); extend when NYSE announces one. */
const NYSE_SPECIAL_CLOSURES: Record<string, string> = {
  '2012-10-29': 'Hurricane Sandy',
  '2012-10-30': 'Hurricane Sandy',
  '2018-12-05': 'National Day of Mourning (George H. W. Bush)',
  '2025-01-09': 'National Day of Mourning (Jimmy Carter)',
};

/** Saturday holidays move to Friday, Sunday holidays to Monday (NYSE Rule 7.2). */
function observed(day: Ymd): Ymd {
  const dow = weekday(day);
  if (dow === 6) return addDays(day, -1);
  if (dow === 0) return addDays(day, 1);
  return day;
}

function nyseYear(y: number): Map<string, DayRule> {
  const days = new Map<string, DayRule>();
  const closed = (day: Ymd, name: string) => days.set(ymdKey(day), { name, kind: 'closed' });

  // New Year's Day on a Saturday is not made up on Friday Dec 31: the rule's exception for the
  // end of an accounting period (NYSE traded on 2021-12-31 and 2010-12-31).
  const newYear = { y, m: 1, d: 1 };
  if (weekday(newYear) !== 6) closed(observed(newYear), "New Year's Day");
  closed(nthWeekday(y, 1, 1, 3), 'Martin Luther King Jr. Day');
  closed(nthWeekday(y, 2, 1, 3), "Washington's Birthday");
  closed(addDays(easterSunday(y), -2), 'Good Friday');
  closed(nthWeekday(y, 5, 1, -1), 'Memorial Day');
  if (y >= 2022) closed(observed({ y, m: 6, d: 19 }), 'Juneteenth National Independence Day');
  closed(observed({ y, m: 7, d: 4 }), 'Independence Day');
  closed(nthWeekday(y, 9, 1, 1), 'Labor Day');
  const thanksgiving = nthWeekday(y, 11, 4, 4);
  closed(thanksgiving, 'Thanksgiving Day');
  closed(observed({ y, m: 12, d: 25 }), 'Christmas Day');
  for (const [date, name] of Object.entries(NYSE_SPECIAL_CLOSURES)) {
    if (date.startsWith(`${y}-`)) closed(parseYmd(date), name);
  }

  // Early closes at 13:00: July 3 and December 24 when they are ordinary weekdays (when July 4
  // or Christmas falls on a Saturday that day is itself the observed holiday; when the holiday
  // falls on a Monday the eve is a Sunday), and the Friday after Thanksgiving.
  const half = (day: Ymd, name: string) => {
    const key = ymdKey(day);
    const dow = weekday(day);
    if (dow !== 0 && dow !== 6 && !days.has(key)) days.set(key, { name, kind: 'half' });
  };
  half({ y, m: 7, d: 3 }, 'Independence Day eve');
  half(addDays(thanksgiving, 1), 'Day after Thanksgiving');
  half({ y, m: 12, d: 24 }, 'Christmas Eve');
  return days;
}

// ---------------------------------------------------------------- BIST

/**
 * Ramadan Feast (Ramazan Bayramı) and Sacrifice Feast (Kurban Bayramı): the eve (arefe, a half
 * day) and the feast days, from Borsa Istanbul's official-holiday announcements. Update yearly.
 */
export const BIST_RELIGIOUS_HOLIDAYS: Readonly<
  Record<number, readonly { name: string; eve: string; days: readonly string[] }[]>
> = {
  2024: [
    { name: 'Ramadan Feast', eve: '2024-04-09', days: ['2024-04-10', '2024-04-11', '2024-04-12'] },
    {
      name: 'Sacrifice Feast',
      eve: '2024-06-15',
      days: ['2024-06-16', '2024-06-17', '2024-06-18', '2024-06-19'],
    },
  ],
  2025: [
    { name: 'Ramadan Feast', eve: '2025-03-29', days: ['2025-03-30', '2025-03-31', '2025-04-01'] },
    {
      name: 'Sacrifice Feast',
      eve: '2025-06-05',
      days: ['2025-06-06', '2025-06-07', '2025-06-08', '2025-06-09'],
    },
  ],
  2026: [
    { name: 'Ramadan Feast', eve: '2026-03-19', days: ['2026-03-20', '2026-03-21', '2026-03-22'] },
    {
      name: 'Sacrifice Feast',
      eve: '2026-05-26',
      days: ['2026-05-27', '2026-05-28', '2026-05-29', '2026-05-30'],
    },
  ],
  // 2027 from the Diyanet calendar the feasts are announced by; confirm against BIST's 2027
  // calendar when it is published.
  2027: [
    { name: 'Ramadan Feast', eve: '2027-03-08', days: ['2027-03-09', '2027-03-10', '2027-03-11'] },
    {
      name: 'Sacrifice Feast',
      eve: '2027-05-15',
      days: ['2027-05-16', '2027-05-17', '2027-05-18', '2027-05-19'],
    },
  ],
};

const BIST_FIXED: [number, number, string][] = [
  [1, 1, "New Year's Day"],
  [4, 23, 'National Sovereignty and Children’s Day'],
  [5, 1, 'Labour and Solidarity Day'],
  [5, 19, 'Commemoration of Atatürk, Youth and Sports Day'],
  [7, 15, 'Democracy and National Unity Day'],
  [8, 30, 'Victory Day'],
  [10, 29, 'Republic Day'],
];

function bistYear(y: number): Map<string, DayRule> {
  const days = new Map<string, DayRule>();
  for (const [m, d, name] of BIST_FIXED) {
    if (m === 7 && d === 15 && y < 2017) continue;
    days.set(ymdKey({ y, m, d }), { name, kind: 'closed' });
  }
  for (const feast of BIST_RELIGIOUS_HOLIDAYS[y] ?? []) {
    for (const day of feast.days) days.set(day, { name: feast.name, kind: 'closed' });
  }
  // Half days last: a closed day never becomes a half day.
  const half = (key: string, name: string) => {
    if (!days.has(key)) days.set(key, { name, kind: 'half' });
  };
  half(ymdKey({ y, m: 10, d: 28 }), 'Republic Day eve');
  for (const feast of BIST_RELIGIOUS_HOLIDAYS[y] ?? []) half(feast.eve, `${feast.name} eve`);
  return days;
}

// ---------------------------------------------------------------- calendars

const RULES: Record<Exclude<Calendar, '24x7'>, CalendarRules> = {
  NYSE: {
    timeZone: 'America/New_York',
    open: [9, 30],
    close: [16, 0],
    earlyClose: [13, 0],
    year: nyseYear,
  },
  // NASDAQ observes the same holidays and early closes as NYSE.
  NASDAQ: {
    timeZone: 'America/New_York',
    open: [9, 30],
    close: [16, 0],
    earlyClose: [13, 0],
    year: nyseYear,
  },
  // Continuous trading of the equity market; the opening auction (09:40–10:00) and the closing
  // auction (18:00–18:10) are outside it. On half days continuous trading ends at 12:30 and the
  // closing auction follows (BIST's half-day session table); the official half-day holiday
  // starts at 13:00.
  BIST: {
    timeZone: 'Europe/Istanbul',
    open: [10, 0],
    close: [18, 0],
    earlyClose: [12, 30],
    year: bistYear,
  },
};

const yearCache = new Map<string, Map<string, DayRule>>();

function rulesFor(cal: Exclude<Calendar, '24x7'>, y: number): Map<string, DayRule> {
  const key = `${cal}:${y}`;
  let days = yearCache.get(key);
  if (!days) {
    days = RULES[cal].year(y);
    yearCache.set(key, days);
  }
  return days;
}

export function calendarTimeZone(calendar: Calendar): string {
  return calendar === '24x7' ? 'UTC' : RULES[calendar].timeZone;
}

/** The session (or why there is none) of an exchange-local date, YYYY-MM-DD. */
export function tradingDay(calendar: Calendar, date: string): TradingDay {
  const day = parseYmd(date);
  if (calendar === '24x7') {
    const open = Date.UTC(day.y, day.m - 1, day.d);
    return { trading: true, session: { date, open, close: open + DAY_MS, early: false } };
  }
  const rules = RULES[calendar];
  const dow = weekday(day);
  if (dow === 0 || dow === 6) return { trading: false, reason: 'weekend' };
  const rule = rulesFor(calendar, day.y).get(date);
  if (rule?.kind === 'closed') return { trading: false, reason: 'holiday', holiday: rule.name };
  const early = rule?.kind === 'half';
  const [ch, cm] = early ? rules.earlyClose : rules.close;
  const session: Session = {
    date,
    open: zonedTime(rules.timeZone, day, rules.open[0], rules.open[1]),
    close: zonedTime(rules.timeZone, day, ch, cm),
    early,
  };
  return rule ? { trading: true, session, holiday: rule.name } : { trading: true, session };
}

/** The exchange-local date of an instant, YYYY-MM-DD. */
export function exchangeDate(calendar: Calendar, at: number): string {
  return ymdKey(zonedParts(calendarTimeZone(calendar), at));
}

/** The first session that opens strictly after the given local date. */
function nextSessionAfter(calendar: Exclude<Calendar, '24x7'>, date: Ymd): Session {
  let day = date;
  // The longest closure in any table is a feast next to a weekend: well under two weeks.
  for (let i = 0; i < 30; i++) {
    day = addDays(day, 1);
    const td = tradingDay(calendar, ymdKey(day));
    if (td.trading) return td.session;
  }
  throw new InvariantError(`no ${calendar} session within 30 days after ${ymdKey(date)}`);
}

export function marketState(calendar: Calendar, at: number): MarketState {
  if (calendar === '24x7') return { open: true, nextOpen: at };
  const today = zonedParts(RULES[calendar].timeZone, at);
  const td = tradingDay(calendar, ymdKey(today));
  const next = () => nextSessionAfter(calendar, today).open;
  if (!td.trading) return { open: false, reason: td.reason, nextOpen: next() };
  const { session } = td;
  if (at < session.open) return { open: false, reason: 'before-open', nextOpen: session.open };
  if (at >= session.close)
    return { open: false, reason: session.early ? 'early-close' : 'after-close', nextOpen: next() };
  return { open: true, nextOpen: next(), closesAt: session.close };
}

/** Fiat and crypto quote currencies of Yahoo's crypto pairs (`BTC-USD`), not share classes (`BRK-B`). */
const CRYPTO_QUOTES = new Set(['USD', 'USDT', 'USDC', 'EUR', 'GBP', 'JPY', 'BTC', 'ETH', 'TRY']);

/**
 * The calendar of a symbol. With an exchange id other than `yahoo` (ccxt ids: crypto venues)
 * the answer is 24x7. For Yahoo symbols: `.IS` → BIST, a crypto pair like `BTC-USD` → 24x7,
 * anything else NYSE (NASDAQ shares its schedule; other venues' suffixes are not mapped yet).
 */
export function calendarForSymbol(symbol: string, exchange = 'yahoo'): Calendar {
  if (exchange !== 'yahoo') return '24x7';
  const s = symbol.toUpperCase();
  if (s.endsWith('.IS')) return 'BIST';
  if (s.includes('/')) return '24x7';
  const dash = s.lastIndexOf('-');
  if (dash > 0 && CRYPTO_QUOTES.has(s.slice(dash + 1))) return '24x7';
  return 'NYSE';
}
