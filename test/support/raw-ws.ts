/** A raw graphql-transport-ws client for protocol tests: sends anything, records every frame. */
import WebSocket from 'ws';

export interface Frame {
  id?: string;
  type: string;
  payload?: unknown;
}

export class RawWs {
  readonly frames: Frame[] = [];
  /** The `next` payloads as the server wrote them (text after `"payload":`), per subscription id. */
  readonly payloads = new Map<string, string[]>();
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      const frame = JSON.parse(text) as Frame;
      this.frames.push(frame);
      if (frame.type === 'next' && frame.id !== undefined) {
        const at = text.indexOf('"payload":') + '"payload":'.length;
        const list = this.payloads.get(frame.id) ?? [];
        list.push(text.slice(at, -1));
        this.payloads.set(frame.id, list);
      }
      for (const w of [...this.waiters]) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of [...this.waiters]) w();
      }),
    );
  }

  static async open(base: string, protocol: string | null = 'graphql-transport-ws'): Promise<RawWs> {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/graphql`, protocol ? [protocol] : []);
    const raw = new RawWs(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return raw;
  }

  /** Opens and initialises with `Bearer <token>`; resolves on connection_ack. */
  static async ready(base: string, token: string): Promise<RawWs> {
    const raw = await RawWs.open(base);
    raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    await raw.until((f) => f.some((x) => x.type === 'connection_ack'), 'connection_ack');
    return raw;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables?: Record<string, unknown>): void {
    this.send({ id, type: 'subscribe', payload: { query, variables } });
  }

  /** Resolves when `pred` holds for the frames received so far (or rejects after `timeoutMs`). */
  until(pred: (frames: Frame[]) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (pred(this.frames)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`raw ws: timed out waiting for ${what} (${this.frames.length} frames)`));
      }, timeoutMs);
      const check = () => {
        if (!pred(this.frames)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
