import { describe, expect, it } from 'vitest';
import { redactSecrets } from './audit-store.ts';

describe('audit arguments', () => {
  it('keep everything but secrets, at any depth', () => {
    expect(
      redactSecrets({
        username: 'alice',
        password: 'hunter22',
        refreshToken: 'tmr_x',
        input: { exchange: 'sim', webhook: { url: 'https://example.com/h', secret: 's3cret-s3cret-s3cret' } },
        list: [{ key: 'tmk_x' }],
      }),
    ).toEqual({
      username: 'alice',
      password: '[redacted]',
      refreshToken: '[redacted]',
      input: { exchange: 'sim', webhook: { url: 'https://example.com/h', secret: '[redacted]' } },
      list: [{ key: '[redacted]' }],
    });
  });
});
