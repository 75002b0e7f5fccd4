/**
 * Alert delivery against local receivers: an HTTP server for the webhook and Slack channels and
 * a real SMTP server (smtp-server) for email, all on loopback.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTransport } from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundPolicy, webhookPolicySchema } from '../../core/outbound-policy.ts';
import { type AlertEventPayload, deliver, sign, verifySignature } from './delivery.ts';

const event: AlertEventPayload = {
  id: 'r-1:1m:1700000000000:1',
  ruleId: 'r-1',
  exchange: 'binance',
  symbol: 'BTC/USDT',
  timeframe: '1m',
  condition: 'PRICE_ABOVE',
  threshold: 50_000,
  value: 50_100.5,
  barTime: '2023-11-14T22:13:00.000Z',
  closedBar: false,
  firedAt: '2023-11-14T22:13:20.000Z',
};

describe('alert delivery', () => {
  let http: Server;
  let base: string;
  let status = 200;
  const requests: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  let smtp: SMTPServer;
  let smtpPort: number;
  const mails: string[] = [];

  beforeAll(async () => {
    http = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        requests.push({ path: req.url ?? '', headers: req.headers, body });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, done) {
        let text = '';
        stream.on('data', (c) => {
          text += c;
        });
        stream.on('end', () => {
          mails.push(text);
          done();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    smtpPort = (smtp.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    http?.close();
    await new Promise<void>((r) => smtp?.close(() => r()));
  });

  // The receiver is on loopback over http: allow-listed, as an operator would for an internal one.
  const policy = new OutboundPolicy(
    webhookPolicySchema.parse({ allow: [{ host: '127.0.0.1', http: true }] }),
  );
  const deps = (mailer: ReturnType<typeof createTransport> | null = null) => ({
    timeoutMs: 2000,
    connectTimeoutMs: 1000,
    maxResponseBytes: 65_536,
    policy,
    mailer,
    from: 'tickmesh <alerts@test>',
    now: () => 1_700_000_001_234,
  });

  it('posts a webhook signed over timestamp and body; a tampered body fails verification', async () => {
    await deliver(
      'webhook',
      { webhook: { url: `${base}/hook`, secret: 's3cret-s3cret-s3cret' } },
      event,
      deps(),
    );
    const r = requests.at(-1)!;
    expect(r.path).toBe('/hook');
    expect(r.headers['x-tickmesh-timestamp']).toBe('1700000001234');
    expect(r.headers['x-tickmesh-event-id']).toBe(event.id);
    const sig = String(r.headers['x-tickmesh-signature']);
    expect(sig).toBe(sign('s3cret-s3cret-s3cret', '1700000001234', r.body));
    expect(verifySignature('s3cret-s3cret-s3cret', '1700000001234', r.body, sig)).toBe(true);
    expect(
      verifySignature('s3cret-s3cret-s3cret', '1700000001234', r.body.replace('50100.5', '1'), sig),
    ).toBe(false);
    expect(verifySignature('other-secret-other', '1700000001234', r.body, sig)).toBe(false);
    expect(JSON.parse(r.body)).toEqual({ type: 'alert', event });
  });

  it('treats a non-2xx answer as a failed attempt', async () => {
    status = 500;
    try {
      await expect(
        deliver(
          'webhook',
          { webhook: { url: `${base}/hook`, secret: 's3cret-s3cret-s3cret' } },
          event,
          deps(),
        ),
      ).rejects.toThrow(/^HTTP 500$/);
    } finally {
      status = 200;
    }
  });

  it('refuses a receiver that is not allow-listed, and says only that', async () => {
    const other = base.replace('127.0.0.1', '127.0.0.2');
    const before = requests.length;
    await expect(
      deliver(
        'webhook',
        { webhook: { url: `${other}/hook`, secret: 's3cret-s3cret-s3cret' } },
        event,
        deps(),
      ),
    ).rejects.toThrow(/^refused by policy$/);
    expect(requests.length).toBe(before);
  });

  it('posts Slack-compatible {text}', async () => {
    await deliver('slack', { slack: { url: `${base}/slack` } }, event, deps());
    const r = requests.at(-1)!;
    expect(r.path).toBe('/slack');
    expect(JSON.parse(r.body).text).toMatch(/PRICE_ABOVE binance BTC\/USDT 1m: 50100\.5 vs 50000/);
  });

  it('sends email over SMTP when configured, and says so when it is not', async () => {
    const mailer = createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
    await deliver('email', { email: { to: 'trader@example.com' } }, event, deps(mailer));
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatch(/Subject: \[tickmesh\] PRICE_ABOVE binance BTC\/USDT/);
    expect(mails[0]).toMatch(/To: trader@example.com/);
    mailer.close();
    await expect(deliver('email', { email: { to: 'x@example.com' } }, event, deps(null))).rejects.toThrow(
      /email is not configured/,
    );
  });
});
