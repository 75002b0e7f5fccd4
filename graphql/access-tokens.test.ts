import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { ConfigError } from '../core/errors.ts';
import { AccessTokens } from './access-tokens.ts';

const SECRET = 'unit-test-jwt-secret-0123456789abcdef';

describe('access tokens (JWT, HS256)', () => {
  it('carry the user and role until they expire on the clock', async () => {
    const clock = new FakeClock(Date.UTC(2024, 0, 1));
    const tokens = new AccessTokens(SECRET, 15 * 60_000, clock);
    const { token, expiresAt } = await tokens.issue('alice', 'trader', 3);
    expect(expiresAt).toBe(Date.UTC(2024, 0, 1, 0, 15));
    expect(await tokens.verify(token)).toEqual({ username: 'alice', role: 'trader', version: 3, expiresAt });
    clock.advance(15 * 60_000 - 1000);
    expect(await tokens.verify(token)).not.toBeNull();
    clock.advance(1000);
    expect(await tokens.verify(token)).toBeNull();
  });

  it('refuse a token signed with another key, a tampered one and garbage', async () => {
    const clock = new FakeClock(Date.UTC(2024, 0, 1));
    const tokens = new AccessTokens(SECRET, 60_000, clock);
    const other = new AccessTokens(`${SECRET}-other`, 60_000, clock);
    const { token } = await other.issue('mallory', 'admin', 0);
    expect(await tokens.verify(token)).toBeNull();
    const [h, p, s] = (await tokens.issue('bob', 'viewer', 0)).token.split('.');
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), role: 'admin' }),
    );
    expect(await tokens.verify(`${h}.${forged.toString('base64url')}.${s}`)).toBeNull();
    expect(await tokens.verify('not-a-jwt')).toBeNull();
    // alg "none" is never accepted.
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    expect(await tokens.verify(none)).toBeNull();
  });

  it('need a secret of at least 32 characters', () => {
    expect(() => new AccessTokens(undefined, 60_000, new FakeClock())).toThrow(ConfigError);
    expect(() => new AccessTokens('short', 60_000, new FakeClock())).toThrow(/TICKMESH_JWT_SECRET/);
  });
});
