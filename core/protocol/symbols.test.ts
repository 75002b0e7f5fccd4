import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidSymbolError } from '../errors.ts';
import { actorIds, consumers, stateKeys, symbolActorOfConsumer } from './names.ts';
import {
  decodeSymbol,
  encodeSymbol,
  isSymbolToken,
  kvKeyOfToken,
  MAX_SYMBOL_LENGTH,
  MAX_TOKEN_LENGTH,
  parseSymbol,
  SYMBOL_PUNCTUATION,
  tokenOfKvKey,
} from './symbols.ts';

// Subject tokens must not contain these; KV keys accept only [-/=.\w].
const SUBJECT_BREAKERS = /[\s.*>]/;
const KV_KEY = /^[-/=.\w]+$/;

describe('symbol tokens', () => {
  it.each([
    ['BTC/USDT', 'BTC-USDT'],
    ['BRK.B', 'BRK_B'],
    ['THYAO.IS', 'THYAO_IS'],
    ['BRK-B', 'BRK~2DB'],
    ['BTC/USDT:USDT', 'BTC-USDT~3AUSDT'],
    ['A_B', 'A~5FB'],
    ['X~Y', 'X~7EY'],
    ['A B', 'A~20B'],
    ['€URO', '~E2~82~ACURO'],
  ])('encodes %s as %s and back', (symbol, token) => {
    expect(encodeSymbol(symbol)).toBe(token);
    expect(decodeSymbol(token)).toBe(symbol);
  });

  it('round-trips arbitrary strings, producing subject- and KV-safe tokens', () => {
    fc.assert(
      // 16 code points of 4 UTF-8 bytes each escape to 192 characters, within MAX_TOKEN_LENGTH.
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }), (symbol) => {
        fc.pre(
          symbol.length <= 64 &&
            !/[\uD800-\uDFFF]/.test(symbol.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '')),
        );
        const token = encodeSymbol(symbol);
        expect(token).not.toMatch(SUBJECT_BREAKERS);
        expect(isSymbolToken(token)).toBe(true);
        expect(kvKeyOfToken(token)).toMatch(KV_KEY);
        expect(tokenOfKvKey(kvKeyOfToken(token))).toBe(token);
        expect(decodeSymbol(token)).toBe(symbol);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips exchange-like symbols', () => {
    const part = fc.stringMatching(/^[A-Z0-9]{1,6}$/);
    const sep = fc.constantFrom('/', '.', '-', ':', '_', '');
    fc.assert(
      fc.property(part, sep, part, (a, s, b) => {
        const symbol = a + s + b;
        expect(decodeSymbol(encodeSymbol(symbol))).toBe(symbol);
      }),
    );
  });

  it('keeps distinct symbols distinct', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 10 }),
        fc.string({ minLength: 1, maxLength: 10 }),
        (a, b) => {
          fc.pre(a !== b);
          expect(encodeSymbol(a)).not.toBe(encodeSymbol(b));
        },
      ),
    );
  });

  it('rejects empty or oversized symbols and malformed tokens with a clear error', () => {
    expect(() => encodeSymbol('')).toThrow(InvalidSymbolError);
    expect(() => encodeSymbol('X'.repeat(65))).toThrow(/length/);
    expect(() => decodeSymbol('BTC~4')).toThrow(/bad escape/);
    expect(() => decodeSymbol('BTC.USDT')).toThrow(/cannot appear/);
    expect(() => decodeSymbol('~FF')).toThrow(/UTF-8/);
  });
});

describe('the symbol grammar (parseSymbol)', () => {
  it.each([
    'BTC/USDT',
    'BTC/USDT:USDT',
    'BTC/USDT:USDT-240628-70000-C',
    '1000PEPE/USDT',
    'BRK.B',
    'BRK-B',
    '^GSPC',
    'EURUSD=X',
    'GC=F',
    'M&M.NS',
    'THYAO.IS',
    'ETH-PERP',
    'BTC_JPY',
    'stETH/ETH',
    'A',
    'X'.repeat(MAX_SYMBOL_LENGTH),
  ])('accepts the real-world symbol %s unchanged', (symbol) => {
    expect(parseSymbol(symbol)).toBe(symbol);
  });

  it.each([
    ['', /length must be 1\.\.64/],
    ['X'.repeat(65), /length/],
    ['X'.repeat(500), /length/],
    ['\u{1F680}'.repeat(32), /non-ASCII character U\+1F680 at position 0/],
    ['ВТС/USDT', /non-ASCII character U\+0412 at position 0/], // Cyrillic look-alikes
    ['BTC/USDT\u202E', /bidi control character U\+202E at position 8/],
    ['BTC\u200B/USDT', /format or bidi control character U\+200B/], // zero-width space
    ['BTC\u0000', /control character U\+0000 at position 3/],
    ['BTC USDT', /whitespace U\+0020/],
    ['BTC\u00A0USDT', /whitespace U\+00A0/],
    ['ＢＴＣ', /non-ASCII character U\+FF22/], // full-width: refused, not NFKC-folded
    ['Cafe\u0301', /non-ASCII character U\+0301/], // a combining mark (not NFC either)
    ['BTC*', /character "\*"/],
    ['BTC>', /character ">"/],
    ['/BTC', /starts with a letter, a digit or \^/],
    ['BTC/', /ends with a letter or digit/],
    ['^', /ends with a letter or digit/],
  ])('refuses %j with TM_ERR_INVALID_SYMBOL', (symbol, reason) => {
    let error: unknown;
    try {
      parseSymbol(symbol);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidSymbolError);
    expect((error as InvalidSymbolError).code).toBe('TM_ERR_INVALID_SYMBOL');
    expect((error as Error).message).toMatch(reason);
  });

  it('shows refused input bounded and escaped (no raw controls, at most 64 characters)', () => {
    const message = (input: string) => {
      try {
        parseSymbol(input);
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    const long = message('Y'.repeat(500));
    expect(long).toContain(`"${'Y'.repeat(64)}"... (500 characters)`);
    expect(long.length).toBeLessThan(200);
    expect(message('\u{1F680}'.repeat(32)).length).toBeLessThan(300);
    expect(message('A\u202EB')).toContain('"A\\u{202e}B"');
    expect(message('A\u0000')).not.toMatch(/[^\x20-\x7e]/);
  });

  it('refuses a symbol of any script but ASCII (look-alikes cannot pass)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }), (s) => {
        fc.pre([...s].some((c) => c.codePointAt(0)! > 0x7f));
        expect(() => parseSymbol(s)).toThrow(InvalidSymbolError);
      }),
    );
  });

  it('gives every symbol of the grammar a token that fits NATS consumer names and KV keys', () => {
    const alphabet = `ABCxyz019${SYMBOL_PUNCTUATION}`.split('');
    const symbol = fc
      .array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: MAX_SYMBOL_LENGTH })
      .map((chars) => `A${chars.join('')}`.slice(0, MAX_SYMBOL_LENGTH - 1) + 'Z');
    const longestExchange = `a${'b'.repeat(31)}`;
    fc.assert(
      fc.property(symbol, (s) => {
        expect(parseSymbol(s)).toBe(s);
        expect(encodeSymbol(s).length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH);
        expect(consumers.symbolTrades(longestExchange, s).length).toBeLessThanOrEqual(255);
        expect(decodeSymbol(encodeSymbol(s))).toBe(s);
      }),
    );
    // The worst case: 64 characters that all escape to three.
    const worst = `A${':'.repeat(62)}Z`;
    expect(consumers.symbolTrades(longestExchange, worst).length).toBeLessThanOrEqual(255);
  });

  it('refuses to build a token longer than NATS names allow (symbols stored before the grammar)', () => {
    // The bug: 32 emoji gave a 392-character consumer name and a crash-looping actor.
    expect(() => encodeSymbol('\u{1F680}'.repeat(32))).toThrow(/more than the 200 NATS names allow/);
    expect(() => consumers.symbolTrades('sim', '\u{1F680}'.repeat(32))).toThrow(InvalidSymbolError);
  });

  it('maps a symbol durable back to its actor, and nothing else', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9]{0,31}$/),
        fc.string({ minLength: 1, maxLength: 12 }),
        (ex, sym) => {
          expect(symbolActorOfConsumer(consumers.symbolTrades(ex, sym))).toBe(actorIds.symbol(ex, sym));
        },
      ),
    );
    expect(symbolActorOfConsumer(consumers.barWriter)).toBeNull();
    expect(symbolActorOfConsumer(consumers.alertDispatcher)).toBeNull();
    expect(symbolActorOfConsumer('sym_Bad_X')).toBeNull();
    expect(symbolActorOfConsumer(stateKeys.symbol('sim', 'BTC/USDT'))).toBeNull();
  });
});
