/**
 * Random bearer secrets (API keys, refresh tokens) and their stored form. They carry 256 random
 * bits, so a plain SHA-256 is enough to keep them unusable at rest (no slow hash needed), and the
 * lookup by hash is an index scan.
 */
import { createHash, randomBytes } from 'node:crypto';

/** `<prefix>_<43 base64url characters>`; the prefix says what the secret is when one leaks. */
export function newOpaqueToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
