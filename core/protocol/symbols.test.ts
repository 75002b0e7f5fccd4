import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidSymbolError } from '../errors.ts';
import { decodeSymbol, encodeSymbol, isSymbolToken, kvKeyOfToken, tokenOfKvKey } from './symbols.ts';

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
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), (symbol) => {
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
