/**
 * Per-topic execution of subscriptions. Every distinct key (normalised document, variables,
 * visibility scope; graphql/ws-documents.ts executionKey) has one source stream and is executed
 * through GraphQL ONCE per source event; the result is serialised once and every sink of the key
 * gets the same payload string (the socket adds only its subscription id). The last sink to
 * leave stops the execution, which returns its source stream (releasing the hub subscriber, and
 * with the last one of a subject the NATS subscription). With `shared: false` every subscriber
 * gets an execution of its own: the per-subscriber path, kept as the benchmark's baseline.
 */
import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionResult,
  execute,
  type GraphQLSchema,
} from 'graphql';
import type { Logger } from '../core/log.ts';
import { metrics } from '../core/metrics.ts';
import { isConflatable } from './topic-hub.ts';
import { type PayloadError, payloadErrorOf } from './ws-documents.ts';

export interface Sink {
  /** One result, serialised (UTF-8, shared by every sink: never modify); `conflatable` when a newer one supersedes it (a forming bar). */
  next(payload: Buffer, conflatable: boolean): void;
  /** The source failed: the subscription is over. */
  error(errors: PayloadError[]): void;
  /** The source ended: the subscription is over. */
  complete(): void;
}

export interface FanoutRequest {
  key: string;
  document: DocumentNode;
  operationName?: string;
  variables?: Record<string, unknown>;
  /** The resolver context (the first subscriber's; the key's scope makes them equivalent). */
  context: unknown;
}

export interface Joined {
  release(): void;
}

interface Execution {
  key: string;
  request: FanoutRequest;
  sinks: Set<Sink>;
  stream: AsyncIterator<unknown> | null;
  /** Settles when the source exists (null) or could not be created (its errors). */
  ready: Promise<PayloadError[] | null>;
  ended: boolean;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
}

export class Fanout {
  private readonly executions = new Map<string, Execution>();
  private seq = 0;

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly shared: boolean,
    private readonly log: Logger,
  ) {}

  /** Running executions (keys with at least one subscriber). */
  get executionCount(): number {
    return this.executions.size;
  }

  /** Joins (or starts) the execution of `req.key`; errors when its source cannot be created. */
  async join(req: FanoutRequest, sink: Sink): Promise<Joined | PayloadError[]> {
    const key = this.shared ? req.key : `${req.key}\u0000#${++this.seq}`;
    const ex = this.executions.get(key) ?? this.start(key, req);
    const errors = await ex.ready;
    if (errors) return errors;
    if (ex.ended) {
      // Ended between start and join (its source completed): a fresh one serves this sink.
      return this.join(req, sink);
    }
    ex.sinks.add(sink);
    metrics.subscriptions.inc();
    let left = false;
    return {
      release: () => {
        if (left) return;
        left = true;
        metrics.subscriptions.dec();
        ex.sinks.delete(sink);
        if (ex.sinks.size === 0) this.stop(ex);
      },
    };
  }

  /** Subscribers of all executions. */
  get subscriberCount(): number {
    let n = 0;
    for (const ex of this.executions.values()) n += ex.sinks.size;
    return n;
  }

  close(): void {
    for (const ex of [...this.executions.values()]) this.stop(ex);
  }

  private start(key: string, request: FanoutRequest): Execution {
    const ex: Execution = {
      key,
      request,
      sinks: new Set(),
      stream: null,
      ready: Promise.resolve(null),
      ended: false,
    };
    this.executions.set(key, ex);
    ex.ready = (async () => {
      let source: AsyncIterable<unknown> | ExecutionResult;
      try {
        source = await createSourceEventStream({
          schema: this.schema,
          document: request.document,
          contextValue: request.context,
          variableValues: request.variables,
          operationName: request.operationName,
        });
      } catch (e) {
        source = { errors: [e as never] };
      }
      if (!isAsyncIterable(source)) {
        this.forget(ex);
        return (source.errors ?? []).map(payloadErrorOf);
      }
      ex.stream = source[Symbol.asyncIterator]();
      if (ex.ended) void ex.stream.return?.();
      else void this.pump(ex, ex.stream);
      return null;
    })();
    return ex;
  }

  private async pump(ex: Execution, stream: AsyncIterator<unknown>): Promise<void> {
    const { schema } = this;
    const { document, context, variables, operationName } = ex.request;
    for (;;) {
      let r: IteratorResult<unknown>;
      try {
        r = await stream.next();
      } catch (e) {
        this.end(ex, (sink) => sink.error([payloadErrorOf(e)]));
        return;
      }
      if (ex.ended) return;
      if (r.done) {
        this.end(ex, (sink) => sink.complete());
        return;
      }
      let payload: Buffer;
      try {
        const out = execute({
          schema,
          document,
          rootValue: r.value,
          contextValue: context,
          variableValues: variables,
          operationName,
        });
        payload = Buffer.from(JSON.stringify(out instanceof Promise ? await out : out));
      } catch (e) {
        this.log.warn({ err: e }, 'subscription event could not be executed');
        continue;
      }
      metrics.wsExecutions.inc();
      if (ex.ended) return;
      const conflatable = isConflatable(r.value);
      for (const sink of ex.sinks) sink.next(payload, conflatable);
    }
  }

  /** The source is over: tell every sink, drop the execution. */
  private end(ex: Execution, tell: (sink: Sink) => void): void {
    if (ex.ended) return;
    this.forget(ex);
    ex.ended = true;
    const sinks = [...ex.sinks];
    ex.sinks.clear();
    // Each sink's owner still calls release() (which counts it out).
    for (const sink of sinks) tell(sink);
  }

  private stop(ex: Execution): void {
    if (ex.ended) return;
    ex.ended = true;
    this.forget(ex);
    void ex.stream?.return?.()?.catch(() => {});
  }

  private forget(ex: Execution): void {
    if (this.executions.get(ex.key) === ex) this.executions.delete(ex.key);
  }
}
