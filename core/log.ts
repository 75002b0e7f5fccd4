import { type Logger, pino } from 'pino';

export type { Logger };

/** pino JSON logs; one root logger per process, children carry role/actor bindings. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** Logs a message once per distinct key, so a flood of bad frames does not flood the log. */
export class OnceLogger {
  private readonly seen = new Set<string>();
  constructor(
    private readonly log: Logger,
    private readonly max = 1000,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    if (this.seen.has(key)) return;
    if (this.seen.size >= this.max) this.seen.clear();
    this.seen.add(key);
    this.log.warn(obj, msg);
  }
}
