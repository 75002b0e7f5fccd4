import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats, type TestNats } from '../test/support/infra.ts';
import { connectNats, infoOrNull, isNotFound, type NatsConnection } from './nats.ts';

describe('JetStream "not found"', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'test-not-found', { user: 'operator', pass: nats.passwords.operator });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('is told by the API error code: a missing stream or consumer is null, other failures are thrown', async () => {
    const jsm = await jetstreamManager(nc);
    expect(await infoOrNull(jsm.streams.info('MISSING'))).toBeNull();
    expect(await infoOrNull(jsm.streams.info('MISSING', { subjects_filter: 'x.>' }))).toBeNull();
    expect(await infoOrNull(jsm.consumers.info('MISSING', 'c'))).toBeNull();

    await jsm.streams.add({ name: 'PRESENT', subjects: ['x.>'] });
    expect((await infoOrNull(jsm.streams.info('PRESENT')))?.config.name).toBe('PRESENT');
    expect(await infoOrNull(jsm.consumers.info('PRESENT', 'missing'))).toBeNull();

    // Subjects overlapping another stream's: an API error, but not "not found".
    const overlap = jsm.streams.add({ name: 'OVERLAP', subjects: ['x.y'] });
    const err = await infoOrNull(overlap).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(isNotFound(err)).toBe(false);
    // A message that reads like "not found" is not the code.
    expect(isNotFound(new Error('stream not found'))).toBe(false);
  });
});
