import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import {
  CHART_LOGO_STYLE_HASH,
  csrfRefusal,
  hostAllowed,
  httpPolicy,
  originAllowed,
  parseHost,
  upgradeRefusal,
} from './http-policy.ts';

const policy = httpPolicy(
  {
    allowedHosts: ['dash.example', 'api.example:8443', '*.corp.example'],
    corsOrigins: ['https://app.example'],
  },
  4000,
);

describe('parseHost', () => {
  it.each([
    ['localhost:4000', { name: 'localhost', port: 4000 }],
    ['LocalHost.:4000', { name: 'localhost', port: 4000 }],
    ['[::1]:4000', { name: '[::1]', port: 4000 }],
    ['example.com', { name: 'example.com', port: null }],
  ])('%s', (host, parsed) => expect(parseHost(host)).toEqual(parsed));

  it.each(['', ':4000', 'a b', 'evil.example:99999', '::1', 'x@y', 'a/b'])('refuses %j', (host) =>
    expect(parseHost(host)).toBeNull(),
  );
});

describe('hostAllowed', () => {
  it.each([
    'localhost:4000',
    '127.0.0.1:4000',
    '[::1]:4000',
    'dash.example',
    'dash.example:80',
    'dash.example:4000',
    'api.example:8443',
    'a.corp.example',
    'b.a.corp.example:443',
  ])('answers %s', (host) => expect(hostAllowed(host, policy)).toBe(true));

  it.each([
    undefined,
    '',
    'evil.example:4000',
    // DNS rebinding: another site's name that now resolves to 127.0.0.1
    'attacker.example:4000',
    'localhost:4001',
    'localhost',
    '127.0.0.1:80',
    'api.example',
    'api.example:443',
    'corp.example',
    'dash.example.evil.example',
  ])('refuses %s', (host) => expect(hostAllowed(host, policy)).toBe(false));

  it('answers any host with *', () => {
    expect(hostAllowed('whatever.example', httpPolicy({ allowedHosts: ['*'], corsOrigins: [] }, 4000))).toBe(
      true,
    );
  });
});

describe('originAllowed', () => {
  it.each([
    [undefined, 'localhost:4000'],
    ['http://localhost:4000', 'localhost:4000'],
    ['https://dash.example', 'dash.example'],
    ['https://dash.example', 'dash.example:443'],
    ['http://dash.example', 'dash.example'],
    ['https://app.example', 'dash.example'],
  ])('allows %s on Host %s', (origin, host) => expect(originAllowed(origin, host, policy)).toBe(true));

  it.each([
    ['http://evil.example', 'localhost:4000'],
    ['http://localhost:4001', 'localhost:4000'],
    ['http://127.0.0.1:4000', 'localhost:4000'],
    ['null', 'localhost:4000'],
    ['https://dash.example', 'dash.example:80'],
    ['file://', 'localhost:4000'],
    ['http://localhost:4000', undefined],
  ])('refuses %s on Host %s', (origin, host) => expect(originAllowed(origin, host, policy)).toBe(false));
});

describe('upgradeRefusal', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  it('says why, or null', () => {
    expect(upgradeRefusal(req({ host: 'localhost:4000' }), policy)).toBeNull();
    expect(
      upgradeRefusal(req({ host: 'localhost:4000', origin: 'http://localhost:4000' }), policy),
    ).toBeNull();
    expect(upgradeRefusal(req({ host: 'evil.example:4000' }), policy)).toMatchObject({
      status: 421,
      message: expect.stringMatching(/does not answer to Host/),
    });
    expect(
      upgradeRefusal(req({ host: 'localhost:4000', origin: 'http://evil.example' }), policy),
    ).toMatchObject({
      status: 403,
      message: expect.stringMatching(/origin "http:\/\/evil.example" is not allowed/),
    });
  });
});

describe('csrfRefusal', () => {
  it.each([
    ['POST', { 'content-type': 'text/plain' }],
    ['POST', { 'content-type': 'Text/Plain; charset=utf-8' }],
    ['POST', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['POST', { 'content-type': 'multipart/form-data; boundary=x' }],
    ['POST', {}],
    ['POST', { 'content-type': 'text/plain', authorization: 'Bearer x' }],
    ['GET', {}],
    ['GET', { 'content-type': 'text/plain' }],
    ['HEAD', {}],
  ])('refuses %s %j', (method, headers) => expect(csrfRefusal(method, headers)).toMatch(/needs/));

  it.each([
    ['POST', { 'content-type': 'application/json' }],
    ['POST', { 'content-type': 'application/graphql' }],
    ['GET', { authorization: 'Bearer x' }],
    ['GET', { 'x-tickmesh-request': '1' }],
    ['GET', { 'content-type': 'application/json' }],
    ['GET', { upgrade: 'websocket' }],
    ['OPTIONS', {}],
  ])('lets %s %j through', (method, headers) => expect(csrfRefusal(method, headers)).toBeNull());
});

describe('gateway.http config', () => {
  it('reads comma lists from the environment, normalised', () => {
    const cfg = loadConfig({
      TICKMESH_ALLOWED_HOSTS: ' Gateway, dash.example:443 ,*.corp.example,',
      TICKMESH_CORS_ORIGINS: 'https://App.example',
    });
    expect(cfg.gateway.http).toEqual({
      allowedHosts: ['gateway', 'dash.example:443', '*.corp.example'],
      corsOrigins: ['https://app.example'],
    });
  });

  it('defaults to loopback only and no CORS', () => {
    expect(loadConfig({}).gateway.http).toEqual({ allowedHosts: [], corsOrigins: [] });
  });

  it.each([
    ['TICKMESH_ALLOWED_HOSTS', 'http://dash.example'],
    ['TICKMESH_ALLOWED_HOSTS', 'a b'],
    ['TICKMESH_CORS_ORIGINS', 'https://app.example/'],
    ['TICKMESH_CORS_ORIGINS', 'app.example'],
    ['TICKMESH_CORS_ORIGINS', '*'],
  ])('refuses %s=%s', (name, value) => expect(() => loadConfig({ [name]: value })).toThrow(ConfigError));
});

describe('CHART_LOGO_STYLE_HASH', () => {
  it("is the hash of the installed lightweight-charts' attribution logo stylesheet", () => {
    const file = new URL(
      '../node_modules/lightweight-charts/dist/lightweight-charts.development.mjs',
      import.meta.url,
    );
    const css = /^const css = `([^`]*)`;$/m.exec(readFileSync(file, 'utf8'))?.[1];
    expect(css).toMatch(/^a#tv-attr-logo\{/);
    expect(CHART_LOGO_STYLE_HASH).toBe(`'sha256-${createHash('sha256').update(css!).digest('base64')}'`);
  });
});
