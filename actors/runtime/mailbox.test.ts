import { describe, expect, it } from 'vitest';
import { MailboxClosedError } from '../../core/errors.ts';
import { Mailbox } from './mailbox.ts';

describe('Mailbox', () => {
  it('delivers in order and applies back-pressure when full', async () => {
    const mb = new Mailbox<number>(2);
    await mb.put(1);
    await mb.put(2);
    expect(mb.offer(3)).toBe(false);
    let putDone = false;
    const p = mb.put(3).then(() => {
      putDone = true;
    });
    await Promise.resolve();
    expect(putDone).toBe(false);
    expect((await mb.take()).value).toBe(1);
    await p;
    expect(putDone).toBe(true);
    expect((await mb.take()).value).toBe(2);
    expect((await mb.take()).value).toBe(3);
  });

  it('hands a message straight to a waiting taker', async () => {
    const mb = new Mailbox<string>(1);
    const next = mb.take();
    expect(mb.offer('x')).toBe(true);
    expect(await next).toEqual({ value: 'x', done: false });
  });

  it('drains then ends after close; puts fail', async () => {
    const mb = new Mailbox<number>(3);
    await mb.put(1);
    mb.close();
    expect((await mb.take()).value).toBe(1);
    expect((await mb.take()).done).toBe(true);
    await expect(mb.put(2)).rejects.toBeInstanceOf(MailboxClosedError);
  });
});
