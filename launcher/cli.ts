/**
 * tickmesh <role>: one entry point for every process role (DESIGN.md "Processes").
 */

import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { loadConfig } from '../core/config.ts';
import { createPool } from '../core/db.ts';
import { ConfigError, StartupError } from '../core/errors.ts';
import { loadExchangesFile } from '../core/exchanges-config.ts';
import { createLogger } from '../core/log.ts';
import { VERSION } from '../core/micro.ts';
import { connectAs } from '../core/nats.ts';
import {
  addSymbol,
  listSymbols,
  removeSymbol,
  type SymbolRow,
  setSymbolActive,
} from '../core/symbols-store.ts';
import {
  createUser,
  disableUser,
  listUsers,
  resetPassword,
  setUserRole,
  type UserRow,
} from '../core/users-store.ts';
import { natsCliCommand, startDev } from './dev.ts';
import { formatInspection, inspect } from './inspect.ts';
import { errorText } from './preflight.ts';
import {
  type RoleHandle,
  runMigrate,
  startGatewayRole,
  startMetricsServer,
  startSupervisorRole,
  startWorkerRole,
} from './roles.ts';
import { importTrades } from './trades-import.ts';
import { verifyBars } from './verify.ts';

/**
 * Runs until SIGINT/SIGTERM, then stops gracefully; a second signal a second or more later forces
 * exit. One Ctrl-C reaches this process more than once (the terminal signals the whole process
 * group and npm/tsx relay it as well): repeats within that second are the same request.
 */
function untilSignal(stop: () => Promise<void>, log: ReturnType<typeof createLogger>): void {
  let stopping = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      if (Date.now() - stopping < 1000) return;
      log.warn({ sig }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = Date.now();
    log.info({ sig }, 'shutting down');
    const force = setTimeout(() => {
      log.error('graceful shutdown timed out');
      process.exit(1);
    }, 30_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function runRole(
  start: (cfg: ReturnType<typeof loadConfig>, log: ReturnType<typeof createLogger>) => Promise<RoleHandle[]>,
) {
  const cfg = loadConfig();
  const log = createLogger(cfg.logLevel, { app: 'tickmesh' });
  const handles = await start(cfg, log);
  untilSignal(async () => {
    for (const h of handles.reverse()) await h.stop();
  }, log);
}

const program = new Command('tickmesh')
  .version(VERSION)
  .description('real-time market data on a supervised actor system');

program
  .command('dev')
  .description('everything in one process (embedded NATS and PostgreSQL when not configured)')
  .action(async () => {
    // Until the system is up, an error event nobody listens to is a start-up failure like any
    // other: one line, no stack trace.
    process.on('uncaughtException', exitWithOneLine);
    process.on('unhandledRejection', exitWithOneLine);
    const cfg = loadConfig();
    const log = createLogger(cfg.logLevel, { app: 'tickmesh' });
    const sys = await startDev(process.env, log);
    const lines = [
      '',
      'tickmesh is running',
      `  dashboard   ${sys.gatewayUrl}/`,
      sys.generatedAdmin
        ? `  sign in     user ${sys.generatedAdmin.user}, password ${sys.generatedAdmin.password}   (kept in ${sys.generatedAdmin.file}; TICKMESH_ADMIN_PASSWORD sets your own)`
        : `  sign in     user ${cfg.auth.adminUser}, with the password in TICKMESH_ADMIN_PASSWORD, or the one you set (forgotten: tickmesh users reset-password ${cfg.auth.adminUser})`,
      `  graphql     ${sys.gatewayUrl}/graphql   (graphql-ws on the same path)`,
      `  metrics     ${sys.metricsUrl}/metrics`,
      `  nats        ${sys.natsUrl}`,
      `  nats cli    ${natsCliCommand(sys.natsUrl, sys.natsOperator)} stream ls`,
      `  postgres    ${sys.databaseUrl}`,
      ...(sys.databaseDir ? [`  pg data     ${sys.databaseDir}`] : []),
      'Ctrl-C stops everything.',
      '',
    ];
    process.stdout.write(lines.join('\n'));
    process.off('uncaughtException', exitWithOneLine);
    process.off('unhandledRejection', exitWithOneLine);
    untilSignal(sys.stop, log);
  });

program
  .command('migrate')
  .description('apply database migrations and exit')
  .action(async () => {
    const cfg = loadConfig();
    const log = createLogger(cfg.logLevel, { app: 'tickmesh', role: 'migrate' });
    const applied = await runMigrate(cfg, log);
    log.info({ applied }, applied.length ? 'migrated' : 'database already up to date');
  });

program
  .command('supervisor')
  .description('desired actors, placement on workers, leader lease')
  .action(() =>
    runRole(async (cfg, log) => [
      await startMetricsServer(cfg.metricsPort),
      await startSupervisorRole(cfg, log),
    ]),
  );

program
  .command('worker')
  .description('hosts the actors assigned to it')
  .action(() =>
    runRole(async (cfg, log) => [await startMetricsServer(cfg.metricsPort), await startWorkerRole(cfg, log)]),
  );

program
  .command('gateway')
  .description('GraphQL (HTTP + graphql-ws), dashboard, /healthz, /readyz; /metrics on METRICS_PORT')
  .action(() =>
    runRole(async (cfg, log) => [
      await startMetricsServer(cfg.metricsPort),
      await startGatewayRole(cfg, log),
    ]),
  );

program
  .command('inspect')
  .description('streams, consumers, KV buckets and micro services, as the NATS CLI would show them')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const cfg = loadConfig();
    if (!cfg.nats.url) throw new ConfigError('set NATS_URL (the dev command prints it)');
    const nc = await connectAs(cfg, 'operator', 'tickmesh-inspect');
    const result = await inspect(nc);
    process.stdout.write(`${opts.json ? JSON.stringify(result, null, 2) : formatInspection(result)}\n`);
    await nc.close();
  });

program
  .command('verify')
  .description('recompute bars from the TRADES stream and compare them with the candles table')
  .option('--grace-ms <ms>', 'bar grace used by the symbol actors', '1000')
  .action(async (opts: { graceMs: string }) => {
    const cfg = loadConfig();
    if (!cfg.nats.url || !cfg.database.url)
      throw new ConfigError('set NATS_URL and DATABASE_URL (the dev command prints them)');
    const nc = await connectAs(cfg, 'operator', 'tickmesh-verify');
    const pool = createPool(cfg.database.url, 2);
    const reports = await verifyBars(nc, pool, Number(opts.graceMs));
    console.table(reports);
    const bad = reports.filter((r) => r.missing || r.different || r.extra);
    process.stdout.write(
      bad.length ? `${bad.length} series differ\n` : `all ${reports.length} series match the trade stream\n`,
    );
    await nc.close();
    await pool.end();
    process.exitCode = bad.length ? 1 : 0;
  });

/** Runs `fn` with a pool on DATABASE_URL and closes it. */
async function withDatabase<T>(
  fn: (pool: ReturnType<typeof createPool>, cfg: ReturnType<typeof loadConfig>) => Promise<T>,
): Promise<T> {
  const cfg = loadConfig();
  if (!cfg.database.url) throw new ConfigError('set DATABASE_URL (the dev command prints it)');
  const pool = createPool(cfg.database.url, 2);
  try {
    return await fn(pool, cfg);
  } finally {
    await pool.end();
  }
}

function printRows(rows: SymbolRow[]): void {
  process.stdout.write(
    rows.map((r) => `${r.exchange}\t${r.symbol}\t${r.active ? 'active' : 'inactive'}\n`).join(''),
  );
}

const symbols = program
  .command('symbols')
  .description('the desired symbols (the supervisor starts and stops their actors, no restart needed)');
symbols
  .command('list')
  .option('--exchange <id>', 'only this exchange')
  .action((opts: { exchange?: string }) =>
    withDatabase(async (pool) => printRows(await listSymbols(pool, { exchange: opts.exchange }))),
  );
symbols
  .command('add <exchange> <symbol...>')
  .description('add symbols (or reactivate them)')
  .action((exchange: string, list: string[]) =>
    withDatabase(async (pool, cfg) => {
      for (const s of list) printRows([await addSymbol(pool, exchange, s, cfg.symbols)]);
    }),
  );
symbols
  .command('remove <exchange> <symbol...>')
  .description('remove symbols (actors stop, durable consumers and alert rules go; stored bars stay)')
  .action((exchange: string, list: string[]) =>
    withDatabase(async (pool) => {
      for (const s of list)
        process.stdout.write(
          `${exchange}\t${s}\t${(await removeSymbol(pool, exchange, s)) ? 'removed' : 'absent'}\n`,
        );
    }),
  );
for (const [name, active] of [
  ['activate', true],
  ['deactivate', false],
] as const)
  symbols.command(`${name} <exchange> <symbol...>`).action((exchange: string, list: string[]) =>
    withDatabase(async (pool, cfg) => {
      for (const s of list) printRows([await setSymbolActive(pool, exchange, s, active, cfg.symbols)]);
    }),
  );

function printUsers(rows: UserRow[]): void {
  process.stdout.write(
    rows
      .map(
        (u) =>
          `${u.username}\t${u.role}\t${u.disabledAt ? 'disabled' : 'enabled'}\t${u.createdAt.toISOString()}\n`,
      )
      .join(''),
  );
}

/** The password from --password, else the first line of stdin (so it stays out of shell history). */
async function passwordOf(opts: { password?: string }): Promise<string> {
  if (opts.password) return opts.password;
  if (process.stdin.isTTY) process.stderr.write('password: ');
  for await (const line of createInterface({ input: process.stdin })) return line;
  throw new ConfigError('no password: pass --password or one line on stdin');
}

const users = program
  .command('users')
  .description('who may use the API, and their roles (viewer, trader, admin)');
users.command('list').action(() => withDatabase(async (pool) => printUsers(await listUsers(pool))));
users
  .command('add <username> <role>')
  .description('add a user (role: viewer, trader or admin); the password is read from stdin')
  .option('--password <password>', 'the password (else read from stdin)')
  .action((username: string, role: string, opts: { password?: string }) =>
    withDatabase(async (pool) =>
      printUsers([await createUser(pool, username, await passwordOf(opts), role)]),
    ),
  );
users
  .command('set-role <username> <role>')
  .action((username: string, role: string) =>
    withDatabase(async (pool) => printUsers([await setUserRole(pool, username, role)])),
  );
users
  .command('disable <username>')
  .description('disable a user: their logins, tokens and open subscriptions stop at once')
  .action((username: string) =>
    withDatabase(async (pool) => printUsers([await disableUser(pool, username)])),
  );
users
  .command('reset-password <username>')
  .description("set a user's password (read from stdin) and end their sessions")
  .option('--password <password>', 'the password (else read from stdin)')
  .action((username: string, opts: { password?: string }) =>
    withDatabase(async (pool) => printUsers([await resetPassword(pool, username, await passwordOf(opts))])),
  );

program
  .command('trades')
  .description("stored trades (the replay actor's database source)")
  .command('import <exchange> <file>')
  .description(
    'load an NDJSON/CSV/JSON trade file (gzip ok) into the trades table; rows already there are kept',
  )
  .option('--symbol <symbol>', 'symbol of rows that carry none')
  .action((exchange: string, file: string, opts: { symbol?: string }) =>
    withDatabase(async (pool) => {
      const r = await importTrades(pool, exchange, file, {
        symbol: opts.symbol,
        onProgress: (p) =>
          process.stderr.write(`\r${p.read} read, ${p.inserted} inserted, ${p.invalid} invalid`),
      });
      process.stderr.write('\n');
      process.stdout.write(
        `${r.read} trades read, ${r.inserted} inserted, ${r.invalid} invalid rows skipped\n`,
      );
    }),
  );

program
  .command('check-exchanges <file>')
  .description('validate an exchanges file (YAML or JSON) and print what it defines')
  .action((file: string) => {
    const parsed = loadExchangesFile(file);
    for (const [id, e] of Object.entries(parsed.exchanges))
      process.stdout.write(
        `${id}\t${e.kind}\t${e.enabled ? 'enabled' : 'disabled'}\t${e.symbols.length} symbols\n`,
      );
  });

/**
 * A command that fails prints one line on stderr, what failed and how to fix it, and exits 1.
 * Start-up errors say both already; any other error gets its cause on the same line. The stack
 * is for LOG_LEVEL=debug.
 */
function exitWithOneLine(err: unknown): never {
  let line = errorText(err);
  const cause = err instanceof Error && err.cause !== undefined ? errorText(err.cause) : '';
  if (cause && !(err instanceof StartupError) && !line.includes(cause)) line += ` (cause: ${cause})`;
  process.stderr.write(`tickmesh: ${line.replace(/\s*\n\s*/g, ' ')}\n`);
  if (/^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '') && err instanceof Error)
    process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

program.parseAsync(process.argv).catch(exitWithOneLine);
