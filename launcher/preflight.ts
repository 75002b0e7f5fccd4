/**
 * Checks `tickmesh dev` makes before it starts anything, so a broken set-up fails at once with
 * one line that says what to fix, instead of after the servers are up (a taken gateway port) or
 * after minutes of start-up retries (a DATABASE_URL or NATS_URL that points at nothing).
 */
import { AuthorizationError } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { StartupError } from '../core/errors.ts';
import { errnoOf, portIsFree } from './processes.ts';

const TIMEOUT_MS = 5000;

/** A URL without its password, fit to print. */
export function redactUrl(url: string): string {
  return url.replace(/:[^:@/]*@/, ':***@');
}

/** One line for any error: its message, else its inner errors' (AggregateError), else its code. */
export function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.message) return e.message;
  const inner = (e as Partial<AggregateError>).errors;
  if (inner?.length) return [...new Set(inner.map(errorText))].join('; ');
  return errnoOf(e) ?? e.name;
}

export function gatewayPortTaken(port: number, host: string, cause?: unknown): StartupError {
  return new StartupError(
    'gateway',
    `port ${port} on ${host} is already in use`,
    'stop what listens there, or set PORT to a free port (PORT=0 picks one)',
    { cause },
  );
}

export async function checkGatewayPort(port: number, host: string): Promise<void> {
  if (port !== 0 && !(await portIsFree(port, host))) throw gatewayPortTaken(port, host);
}

export async function checkDatabaseUrl(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: TIMEOUT_MS });
  try {
    await client.connect();
  } catch (e) {
    throw new StartupError(
      'database',
      `cannot reach DATABASE_URL=${redactUrl(url)} (${errorText(e)})`,
      'start that PostgreSQL or correct the URL, or unset DATABASE_URL to use the embedded one',
      { cause: e },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** `credential`: a user of that server (it refuses anonymous clients when it has users). */
export async function checkNatsUrl(url: string, credential?: { user: string; pass: string }): Promise<void> {
  try {
    const nc = await connect({
      servers: url,
      reconnect: false,
      timeout: TIMEOUT_MS,
      name: 'tickmesh-preflight',
      ...credential,
    });
    await nc.close();
  } catch (e) {
    if (e instanceof AuthorizationError)
      throw new StartupError(
        'nats',
        `NATS_URL=${redactUrl(url)} refused ${credential ? `the user ${credential.user}` : 'a client without credentials'}`,
        'set NATS_PASSWORD_<USER> for each tickmesh user of that server (README, NATS CLI), or unset NATS_URL to use an embedded one',
        { cause: e },
      );
    throw new StartupError(
      'nats',
      `cannot reach NATS_URL=${redactUrl(url)} (${errorText(e)})`,
      'start that nats-server (with -js) or correct the URL, or unset NATS_URL to use an embedded one',
      { cause: e },
    );
  }
}
