/**
 * A run of consecutive outliers that may confirm a new price level (a real move) or a new
 * normal size. Messages on the bus are not trusted one by one: a buggy feed or a stolen
 * exchange credential can put any number of absurd trades into one published batch. So a run
 * confirms only when it holds `trades` outliers (same side) from at least `messages` distinct
 * published messages, spread over at least `spanMs` from its first outlier to the last. One
 * message never confirms anything, whatever it carries.
 *
 * Messages are named by their stream sequence, which only grows along a consumer, so counting
 * changes of it counts distinct messages. Time is the caller's clock (the stream time of the
 * message, or trade time for replayed history), so a replay decides exactly alike.
 */

export interface ConfirmationRule {
  /** Outliers needed (0: never confirm). */
  trades: number;
  /** Distinct published messages they must come from. */
  messages: number;
  /** Time from the run's first outlier to the confirming one. */
  spanMs: number;
}

/** The run as JSON (the symbol actor's snapshot). */
export interface RunState {
  count: number;
  /** +1 above, −1 below the last accepted value. */
  side: number;
  messages: number;
  lastMessage: number | null;
  /** When the run's first outlier came (null: unknown, taken from the next outlier). */
  since: number | null;
}

export class ConfirmationRun {
  private count = 0;
  private side = 0;
  private messages = 0;
  private lastMessage = Number.NaN;
  private since = Number.NaN;

  /** Outliers in the run so far. */
  get length(): number {
    return this.count;
  }

  /** Adds an outlier on `side` from `message` at time `at`; true when the run now confirms. */
  add(side: number, message: number, at: number, rule: ConfirmationRule): boolean {
    if (this.count === 0 || side !== this.side) {
      this.reset();
      this.side = side;
    }
    if (Number.isNaN(this.since)) this.since = at;
    this.count++;
    if (message !== this.lastMessage) {
      this.messages++;
      this.lastMessage = message;
    }
    return (
      rule.trades > 0 &&
      this.count >= rule.trades &&
      this.messages >= rule.messages &&
      at - this.since >= rule.spanMs
    );
  }

  reset(): void {
    this.count = 0;
    this.side = 0;
    this.messages = 0;
    this.lastMessage = Number.NaN;
    this.since = Number.NaN;
  }

  toState(): RunState {
    return {
      count: this.count,
      side: this.side,
      messages: this.messages,
      lastMessage: Number.isNaN(this.lastMessage) ? null : this.lastMessage,
      since: Number.isNaN(this.since) ? null : this.since,
    };
  }

  load(s: RunState): void {
    this.count = s.count;
    this.side = s.side;
    this.messages = s.messages;
    this.lastMessage = s.lastMessage ?? Number.NaN;
    this.since = s.since ?? Number.NaN;
  }

  /**
   * A run saved before runs counted messages (count and side only): its messages are unknown,
   * so it counts as one message, and its time starts with the next outlier.
   */
  static legacy(count: number, side: number): RunState {
    return { count, side, messages: count > 0 ? 1 : 0, lastMessage: null, since: null };
  }
}
