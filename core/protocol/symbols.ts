/**
 * Reversible, NATS-safe symbol tokens.
 *
 * `/` → `-` and `.` → `_` keep common symbols readable (`BTC/USDT` → `BTC-USDT`,
 * `THYAO.IS` → `THYAO_IS`). Every other byte outside `[A-Za-z0-9]` is escaped as `~`
 * plus two upper-case hex digits of its UTF-8 encoding (`BRK-B` → `BRK~2DB`,
 * `BTC/USDT:USDT` → `BTC-USDT~3AUSDT`). Escaping everything but alphanumerics (rather
 * than only the characters that break a subject) keeps tokens valid as NATS KV keys
 * too, whose alphabet is narrower than a subject's; see `kvKeyOfToken`.
 */
import { InvalidSymbolError } from '../errors.ts';

const SAFE = /^[A-Za-z0-9]$/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export const MAX_SYMBOL_LENGTH = 64;

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
  return out;
}

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
