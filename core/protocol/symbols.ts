/**
 * Reversible, NATS-safe symbol tokens.
 *
 * `/` → `-` and `.` → `_` keep common symbols readable (`BTC/USDT` → `BTC-USDT`,
 * `THYAO.IS` → `THYAO_IS`). Every other byte outside `[A-Za-z0-9]` is escaped as `~`
 * plus two upper-case hex digits of its UTF-8 encoding (`BRK-B` → `BRK~2DB`,
 * `BTC/USDT:USDT` → `BTC-USDT~3AUSDT`). Escaping everything but alphanumerics (rather
 * than only the characters that break a subject) keeps tokens valid as NATS KV keys
 * too, whose alphabet is narrower than a subject's; see `kvKeyOfToken`.
 *
 * Tokens stay readable for any string, but a new symbol must first pass `parseSymbol`, the
 * strict grammar every door (GraphQL, the exchanges file, the simulator's list, the CLI) uses.
 */
import { z } from 'zod';
import { InvalidSymbolError } from '../errors.ts';

const SAFE = /^[A-Za-z0-9]$/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export const MAX_SYMBOL_LENGTH = 64;

/**
 * The longest token: NATS refuses consumer names over 255 characters, and the longest name
 * built from a token is the durable `sym_<exchange (≤ 32)>_<token>` (names.ts). A symbol of the
 * grammar below needs at most 3 × 64 = 192; only symbols stored before it could need more.
 */
export const MAX_TOKEN_LENGTH = 200;

export function encodeSymbol(symbol: string): string {
  if (symbol.length === 0 || symbol.length > MAX_SYMBOL_LENGTH) {
    throw new InvalidSymbolError(symbol, `length must be 1..${MAX_SYMBOL_LENGTH}`);
  }
  let out = '';
  for (const ch of symbol) {
    if (ch === '/') out += '-';
    else if (ch === '.') out += '_';
    else if (SAFE.test(ch)) out += ch;
    else for (const byte of utf8.encode(ch)) out += '~' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  if (out.length > MAX_TOKEN_LENGTH) {
    throw new InvalidSymbolError(
      symbol,
      `its token would be ${out.length} characters, more than the ${MAX_TOKEN_LENGTH} NATS names allow`,
    );
  }
  return out;
}

/**
 * The punctuation real exchange symbols use: ccxt `BTC/USDT`, `BTC/USDT:USDT`,
 * `BTC/USDT:USDT-240628-70000-C`; Yahoo `BRK.B`, `BRK-B`, `^GSPC`, `EURUSD=X`, `M&M.NS`;
 * `ETH-PERP`, `BTC_JPY`.
 */
export const SYMBOL_PUNCTUATION = '/.-_:^=&';
const SYMBOL_CHAR = /^[A-Za-z0-9/.\-_:^=&]$/;
const ALNUM = /^[A-Za-z0-9]$/;

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Why `ch` (not in the symbol alphabet) is refused, by its Unicode category. */
function refusedCharacter(ch: string): string {
  if (/\p{Cc}/u.test(ch)) return `control character ${codePoint(ch)}`;
  if (/\p{Cf}/u.test(ch)) return `invisible format or bidi control character ${codePoint(ch)}`;
  if (/[\s\p{Z}]/u.test(ch)) return `whitespace ${codePoint(ch)}`;
  if (ch.codePointAt(0)! > 0x7e) return `non-ASCII character ${codePoint(ch)}`;
  return `character ${JSON.stringify(ch)}`;
}

/**
 * The strict grammar of a new symbol: 1..64 characters of ASCII letters, digits and
 * `/ . - _ : ^ = &`, starting with a letter, a digit or `^` and ending with a letter or digit.
 * ASCII only, so an accepted symbol is NFC by construction and never normalised behind the
 * caller's back (a full-width `ＢＴＣ` is refused, not folded): look-alike letters of other
 * scripts (Cyrillic `В`), invisible and bidi controls (U+202E), whitespace and control
 * characters are refused with TM_ERR_INVALID_SYMBOL naming the first offending character.
 * Returns the symbol unchanged.
 */
export function parseSymbol(input: unknown): string {
  if (typeof input !== 'string') throw new InvalidSymbolError(String(input), 'a symbol is a string');
  if (input.length === 0 || input.length > MAX_SYMBOL_LENGTH) {
    throw new InvalidSymbolError(input, `length must be 1..${MAX_SYMBOL_LENGTH}`);
  }
  let i = 0;
  for (const ch of input) {
    if (!SYMBOL_CHAR.test(ch)) {
      throw new InvalidSymbolError(
        input,
        `${refusedCharacter(ch)} at position ${i}; a symbol uses ASCII letters, digits and ${SYMBOL_PUNCTUATION.split('').join(' ')}`,
      );
    }
    i++;
  }
  if (!(ALNUM.test(input[0]!) || input[0] === '^') || !ALNUM.test(input.at(-1)!)) {
    throw new InvalidSymbolError(
      input,
      'a symbol starts with a letter, a digit or ^ and ends with a letter or digit',
    );
  }
  return input;
}

/** `parseSymbol` as a zod schema (configuration and the exchanges file). */
export const symbolSchema = z.string().superRefine((value, ctx) => {
  try {
    parseSymbol(value);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

export function decodeSymbol(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const ch = token[i]!;
    if (ch === '-') bytes.push(0x2f);
    else if (ch === '_') bytes.push(0x2e);
    else if (ch === '~') {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new InvalidSymbolError(token, `bad escape at ${i}`);
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (SAFE.test(ch)) bytes.push(ch.charCodeAt(0));
    else throw new InvalidSymbolError(token, `character ${JSON.stringify(ch)} cannot appear in a token`);
  }
  try {
    return utf8Strict.decode(new Uint8Array(bytes));
  } catch (cause) {
    throw new InvalidSymbolError(token, 'escapes do not form UTF-8', { cause });
  }
}

export function isSymbolToken(token: string): boolean {
  return /^(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+$/.test(token);
}

/** KV keys may not contain `~`; `=` never appears in a token, so the swap is reversible. */
export function kvKeyOfToken(token: string): string {
  return token.replaceAll('~', '=');
}

export function tokenOfKvKey(key: string): string {
  return key.replaceAll('=', '~');
}

const EXCHANGE_ID = /^[a-z][a-z0-9]{0,31}$/;

export function assertExchangeId(id: string): string {
  if (!EXCHANGE_ID.test(id)) {
    throw new InvalidSymbolError(id, 'an exchange id is a lower-case ccxt id (letters and digits)');
  }
  return id;
}
