/**
 * A private certificate authority and a server certificate for 127.0.0.1 signed by it, made with
 * the openssl CLI into a temporary folder: for fakes that speak https:// and wss:// to clients
 * that must be told to trust that CA.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeTls } from './fake-common.ts';

export interface FakeCa {
  /** The CA certificate's PEM file (what a client adds to its trust). */
  caFile: string;
  /** The server's key and certificate for `startFakeBinance({ tls })`. */
  server: FakeTls;
  dispose(): void;
}

export function makeFakeCa(): FakeCa {
  const dir = mkdtempSync(join(tmpdir(), 'tm-fake-ca-'));
  const at = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=tickmesh test CA',
  );
  ssl('req', ...ec, '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(at('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.pem'),
    '-days',
    '2',
    '-extfile',
    at('san.ext'),
  );
  return {
    caFile: at('ca.pem'),
    server: { key: readFileSync(at('server.key'), 'utf8'), cert: readFileSync(at('server.pem'), 'utf8') },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
