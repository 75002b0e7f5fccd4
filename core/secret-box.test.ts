import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import { generateSecretKey, isSealed, openSecret, parseSecretKey, sealSecret } from './secret-box.ts';

const key = parseSecretKey(generateSecretKey());

describe('secret box (AES-256-GCM)', () => {
  it('seals to a value that hides the secret and opens back to it', () => {
    const sealed = sealSecret(key, 'webhook-signing-secret');
    expect(isSealed(sealed)).toBe(true);
    expect(sealed).not.toContain('webhook-signing-secret');
    expect(openSecret(key, sealed)).toBe('webhook-signing-secret');
    // A fresh nonce every time: the same secret never seals to the same text.
    expect(sealSecret(key, 'webhook-signing-secret')).not.toBe(sealed);
  });

  it('refuses a tampered value and another key', () => {
    const sealed = sealSecret(key, 'webhook-signing-secret');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0]! ^= 1;
    parts[3] = body.toString('base64url');
    expect(() => openSecret(key, parts.join('.'))).toThrow(ConfigError);
    expect(() => openSecret(parseSecretKey(generateSecretKey()), sealed)).toThrow(ConfigError);
  });

  it('passes a plaintext value from before encryption through', () => {
    expect(isSealed('old-plaintext-secret')).toBe(false);
    expect(openSecret(key, 'old-plaintext-secret')).toBe('old-plaintext-secret');
  });

  it('reads keys as 64 hex digits or base64 of 32 bytes, nothing else', () => {
    const hex = generateSecretKey();
    expect(parseSecretKey(Buffer.from(hex, 'hex').toString('base64')).equals(parseSecretKey(hex))).toBe(true);
    expect(() => parseSecretKey('short')).toThrow(/TICKMESH_SECRET_KEY/);
    expect(() => parseSecretKey('ab'.repeat(31))).toThrow(ConfigError);
  });
});
