import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { StartupError } from '../core/errors.ts';
import { checkDatabaseUrl, checkGatewayPort, errorText, redactUrl } from './preflight.ts';

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('preflight', () => {
  it('names an AggregateError by its inner errors, which carry the only message', () => {
    const e = new AggregateError([
      new Error('connect ECONNREFUSED ::1:1'),
      new Error('connect ECONNREFUSED 127.0.0.1:1'),
    ]);
    expect(errorText(e)).toBe('connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1');
  });

  it('hides the password of a URL', () => {
    expect(redactUrl('postgres://postgres:secret@db:5432/tickmesh')).toBe(
      'postgres://postgres:***@db:5432/tickmesh',
    );
  });

  it('refuses a gateway port in use, and accepts 0', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      await expect(checkGatewayPort(port, '127.0.0.1')).rejects.toThrow(StartupError);
      await expect(checkGatewayPort(0, '127.0.0.1')).resolves.toBeUndefined();
    } finally {
      srv.close();
    }
  });

  it('says which DATABASE_URL answers nothing, without its password', async () => {
    const port = await closedPort();
    const err = await checkDatabaseUrl(`postgres://postgres:secret@127.0.0.1:${port}/x`).catch((e) => e);
    expect(err).toBeInstanceOf(StartupError);
    expect(err.message).toMatch(
      new RegExp(
        `cannot reach DATABASE_URL=postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x \\(connect ECONNREFUSED`,
      ),
    );
  });
});
