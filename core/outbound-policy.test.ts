/**
 * The outbound policy's address classification and URL checks. Name resolution is a function
 * given to the policy here (a table of names → addresses); the integration test
 * (test/webhook-policy.int.test.ts) runs it against a real DNS server and real receivers.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { OutboundRefusedError } from './errors.ts';
import { addressClass, isPublicAddress, OutboundPolicy, webhookPolicySchema } from './outbound-policy.ts';

const policy = (cfg: Record<string, unknown> = {}, names: Record<string, string[]> = {}) =>
  new OutboundPolicy(webhookPolicySchema.parse(cfg), async (host) => names[host] ?? []);

const refused = async (p: OutboundPolicy, url: string) => {
  const e = await p.check(url).then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, url).toBeInstanceOf(OutboundRefusedError);
  return (e as OutboundRefusedError).message;
};

describe('address classification', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.100.100.200', 'carrierGradeNat'], // Alibaba's metadata service
    ['169.254.169.254', 'linkLocal'], // AWS/GCP/Azure metadata
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fd00::1', 'uniqueLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd00:ec2::254', 'uniqueLocal'], // AWS metadata over IPv6
    ['fe80::1', 'linkLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a00:1', 'rfc6052'], // NAT64 of 10.0.0.1
    ['2002:7f00:1::', '6to4'],
  ])('%s is %s and refused', (address, cls) => {
    expect(addressClass(address)).toBe(cls);
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8'])('%s is public', (address) => {
    expect(addressClass(address)).toBe('unicast');
    expect(isPublicAddress(address)).toBe(true);
  });

  it('is false for anything that is not an address', () => {
    expect(isPublicAddress('example.com')).toBe(false);
    expect(isPublicAddress('')).toBe(false);
  });
});

describe('outbound policy', () => {
  const names = {
    'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'],
    'inside.example.com': ['10.0.0.5'],
    'mixed.example.com': ['93.184.216.34', '127.0.0.1'],
    'mapped.example.com': ['::ffff:127.0.0.1'],
    'metadata.google.internal': ['8.8.8.8'],
  };

  it('accepts https to a public host and picks its first address', async () => {
    const t = await policy({}, names).check('https://hooks.example.com/x?y=1');
    expect(t).toMatchObject({
      hostname: 'hooks.example.com',
      port: 443,
      address: '93.184.216.34',
      family: 4,
    });
  });

  it.each([
    'https://127.0.0.1/',
    'https://2130706433/',
    'https://0x7f.1/',
    'https://017700000001/',
    'https://127.1:8443/',
    'https://169.254.169.254/latest/meta-data/',
    'https://10.0.0.1/',
    'https://192.168.0.10/',
    'https://100.64.1.1/',
    'https://0.0.0.0/',
    'https://[::1]/',
    'https://[::]/',
    'https://[fd00::1]/',
    'https://[fe80::1]/',
    'https://[::ffff:127.0.0.1]/',
    'https://[::ffff:a9fe:a9fe]/',
  ])('refuses the literal address in %s, naming its class', async (url) => {
    expect(await refused(policy(), url)).toMatch(
      /^outbound address refused: the address is not public \(\w+ address\)$/,
    );
  });

  it('refuses a name if any of its addresses is not public, without saying which or why', async () => {
    const p = policy({}, names);
    for (const url of [
      'https://inside.example.com/',
      'https://mixed.example.com/',
      'https://mapped.example.com/',
      'https://nowhere.example.com/',
    ])
      expect(await refused(p, url)).toBe(
        'outbound address refused: the host does not resolve to an allowed address',
      );
  });

  it('refuses metadata host names whatever they resolve to', async () => {
    expect(await refused(policy({}, names), 'https://metadata.google.internal/')).toMatch(/metadata/);
  });

  it('refuses http unless allowed, and other schemes always', async () => {
    expect(await refused(policy({}, names), 'http://hooks.example.com/')).toMatch(/only https/);
    await expect(
      policy({ allowHttp: true }, names).check('http://hooks.example.com/'),
    ).resolves.toMatchObject({
      port: 80,
    });
    expect(await refused(policy({ allowHttp: true }, names), 'ftp://hooks.example.com/')).toMatch(
      /only https/,
    );
    expect(await refused(policy(), 'not a url')).toMatch(/not a valid URL/);
  });

  it('lets allow-listed internal receivers through, by address, range or name, on their ports', async () => {
    const p = policy(
      {
        allow: [
          { host: '127.0.0.1', http: true },
          { host: '10.0.0.0/8', ports: [8443] },
          { host: 'Inside.Example.com', ports: [443] },
          { host: '[fd00::1]' },
        ],
      },
      names,
    );
    await expect(p.check('http://127.0.0.1:9999/hook')).resolves.toMatchObject({ address: '127.0.0.1' });
    await expect(p.check('https://10.9.8.7:8443/')).resolves.toMatchObject({ address: '10.9.8.7' });
    expect(await refused(p, 'https://10.9.8.7:8444/')).toMatch(/not public/);
    expect(await refused(p, 'http://10.9.8.7:8443/')).toMatch(/only https/);
    await expect(p.check('https://inside.example.com/')).resolves.toMatchObject({ address: '10.0.0.5' });
    expect(await refused(p, 'https://inside.example.com:444/')).toMatch(/does not resolve to an allowed/);
    await expect(p.check('https://[fd00::1]/')).resolves.toMatchObject({ address: 'fd00::1', family: 6 });
    // The entry covers 127.0.0.1 only, and http is allowed only to it.
    expect(await refused(p, 'http://127.0.0.2/')).toMatch(/not public/);
    expect(await refused(p, 'http://hooks.example.com/')).toMatch(/only https/);
  });

  it('rejects a malformed allow-list range in the config', () => {
    expect(() => webhookPolicySchema.parse({ allow: [{ host: '10.0.0.0/99' }] })).toThrow(/CIDR/);
    expect(() => webhookPolicySchema.parse({ allow: [{ host: 'x', extra: 1 }] })).toThrow();
  });

  it('gives up on a resolver that does not answer in time', async () => {
    const p = new OutboundPolicy(
      webhookPolicySchema.parse({ connectTimeoutMs: 20 }),
      () => new Promise(() => {}),
    );
    expect(await refused(p, 'https://slow.example.com/')).toMatch(/did not resolve in time/);
  });
});

describe('outbound policy when a rule is written', () => {
  const names = { 'inside.example.com': ['10.0.0.5'], 'hooks.example.com': ['93.184.216.34'] };

  it('accepts a name that does not resolve yet, and refuses what check() refuses otherwise', async () => {
    const p = policy({}, names);
    await expect(p.admit('https://not-yet.example.com/')).resolves.toBeUndefined();
    await expect(p.admit('https://hooks.example.com/')).resolves.toBeUndefined();
    for (const url of ['https://inside.example.com/', 'https://2130706433/', 'http://hooks.example.com/'])
      await expect(p.admit(url), url).rejects.toBeInstanceOf(OutboundRefusedError);
  });
});

describe('alerts.webhooks config', () => {
  it('has https-only, nothing allow-listed and a 64 KB answer cap by default', () => {
    expect(loadConfig({}).alerts.webhooks).toEqual({
      allowHttp: false,
      allow: [],
      connectTimeoutMs: 3000,
      maxResponseBytes: 65_536,
      concurrency: 16,
      perHostConcurrency: 2,
    });
    expect(loadConfig({}, { alerts: { pollMs: 10 } }).alerts.webhooks.allow).toEqual([]);
    expect(() => loadConfig({}, { alerts: { webhooks: { allowAll: true } } })).toThrow(/allowAll/);
  });
});

describe('alerts.webhooks.dnsServers', () => {
  it('takes addresses with optional ports and refuses anything else in the config', () => {
    for (const ok of ['10.0.0.2', '10.0.0.2:5353', '::1', '[::1]:53', '[fd00::53]'])
      expect(() => webhookPolicySchema.parse({ dnsServers: [ok] }), ok).not.toThrow();
    for (const bad of ['dns.example.com', '10.0.0.2:99999', '10.0.0.2:x', ''])
      expect(() => webhookPolicySchema.parse({ dnsServers: [bad] }), bad).toThrow(/IP address/);
  });
});
