/**
 * The one reading of an HTTP `Retry-After` header (RFC 9110 §10.2.3): delta-seconds or an
 * HTTP date, as a wait in milliseconds from `now` (the injected clock's time, so a fake clock
 * and a date header agree). Used by every exchange feed that meets 429/418 answers.
 */

/** Retry-After as a wait in ms from `now`; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === '') return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its month (Date.parse alone would take '-5' for a year).
  const at = /[a-z]/i.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** A header's value from a plain header record, whatever the case of its name. */
export function headerValue(
  headers: Readonly<Record<string, unknown>> | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted) continue;
    if (typeof value === 'string') return value;
    if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  }
  return undefined;
}
