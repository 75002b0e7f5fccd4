/**
 * Secrets at rest (webhook signing keys): AES-256-GCM with a random 96-bit nonce per value and
 * the 128-bit tag, sealed as `tmbox1.<nonce>.<tag>.<ciphertext>` (base64url). The key is 32
 * bytes from TICKMESH_SECRET_KEY, given as 64 hex digits or base64. A value without the prefix
 * is plaintext from before encryption: `openSecret` passes it through, and `isSealed` lets the
 * start-up sweep find and seal it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError, InvariantError } from './errors.ts';

const PREFIX = 'tmbox1.';

export type SecretKey = Buffer & { readonly __secretKey: true };

/** Parses TICKMESH_SECRET_KEY: 64 hex digits or base64 of exactly 32 bytes. */
export function parseSecretKey(text: string): SecretKey {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32)
    throw new ConfigError(
      'TICKMESH_SECRET_KEY must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)',
    );
  return key as SecretKey;
}

/** A new random key in the hex form parseSecretKey reads. */
export function generateSecretKey(): string {
  return randomBytes(32).toString('hex');
}

export function isSealed(value: string): boolean {
  return value.startsWith(PREFIX);
}

export function sealSecret(key: SecretKey, plaintext: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const parts = [nonce, cipher.getAuthTag(), body].map((b) => b.toString('base64url'));
  return PREFIX + parts.join('.');
}

/** The plaintext of a sealed value (a plaintext value as is); fails on a wrong key or tampering. */
export function openSecret(key: SecretKey, value: string): string {
  if (!isSealed(value)) return value;
  const [nonce, tag, body] = value
    .slice(PREFIX.length)
    .split('.')
    .map((p) => Buffer.from(p, 'base64url'));
  if (!nonce || !tag || !body) throw new InvariantError('a sealed secret has fewer than three parts');
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new ConfigError('a stored secret does not open with TICKMESH_SECRET_KEY (another key?)');
  }
}
