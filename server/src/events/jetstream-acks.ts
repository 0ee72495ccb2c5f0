import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from "nats";

/** What JetStream answers a stored (or deduplicated) publish with. */
export interface StoredAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

interface Waiting {
  resolve(ack: StoredAck): void;
  reject(err: Error): void;
  deadline: number;
}

/**
 * JetStream publishes in a pipeline, the way NATS clients' "async publish"
 * does it: core NATS publishes, each with a reply subject under one inbox
 * subscription, and the acks matched back by token. nats.js's `js.publish`
 * instead makes a request per message — its own subscription entry, timer,
 * promise chain, and an Error object (with a stack trace) created even when
 * the ack arrives — over half of the relay's CPU per event, counting the
 * garbage collection it caused. Publishes that get no ack within `timeoutMs`
 * (NATS went away) fail with a timeout; a missing stream fails them with
 * NoStreamError; a stream that refuses one (wrong expected last message)
 * fails it with JetStream's description.
 */
export class JetStreamAcks {
  private readonly inbox = createInbox();
  private readonly subscription: Subscription;
  private readonly waiting = new Map<string, Waiting>();
  private nextToken = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    private readonly onNoStream: () => void,
  ) {
    this.subscription = nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const token = msg.subject.slice(this.inbox.length + 1);
        const w = this.waiting.get(token);
        if (!w) return; // timed out already
        this.waiting.delete(token);
        const outcome = readAck(msg.data, msg.headers);
        if (outcome instanceof NoStreamError) this.onNoStream();
        if (outcome instanceof Error) w.reject(outcome);
        else w.resolve(outcome);
      },
    });
  }

  /** Publishes one message; resolves once the stream acknowledged it. */
  publish(subject: string, data: Uint8Array, headers: MsgHdrs): Promise<StoredAck> {
    const token = (this.nextToken++).toString(36);
    const stored = new Promise<StoredAck>((resolve, reject) => {
      this.waiting.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs });
    });
    this.sweeper ??= setInterval(() => this.expire(), Math.max(50, this.timeoutMs / 4)).unref();
    try {
      this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers });
    } catch (err) {
      this.fail(token, err as Error);
    }
    return stored;
  }

  /** Stops listening and fails everything still waiting (the publisher is closing). */
  close(): void {
    this.subscription.unsubscribe();
    for (const token of [...this.waiting.keys()]) this.fail(token, new Error("publisher closed"));
  }

  private expire(): void {
    const now = Date.now();
    // Map order is publish order, and every publish has the same timeout.
    for (const [token, w] of this.waiting) {
      if (w.deadline > now) break;
      this.fail(token, new Error(`no JetStream ack within ${this.timeoutMs} ms`));
    }
    if (this.waiting.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private fail(token: string, err: Error): void {
    const w = this.waiting.get(token);
    if (!w) return;
    this.waiting.delete(token);
    w.reject(err);
  }
}

/** No stream listens on the subject: it was deleted, or NATS lost its store. */
export class NoStreamError extends Error {
  constructor() {
    super("no JetStream stream answered (503 no responders)");
  }
}

const decoder = new TextDecoder();

/** A JetStream publish reply: the ack, or why the message was not stored. */
export function readAck(data: Uint8Array, headers?: MsgHdrs): StoredAck | Error {
  // A status reply without a body: 503 when no stream listens on the subject.
  if (data.length === 0) {
    const code = headers?.code ?? 0;
    if (code === 503) return new NoStreamError();
    return new Error(`unexpected JetStream reply (status ${code} ${headers?.description ?? ""})`);
  }
  let reply: {
    stream?: string;
    seq?: number;
    duplicate?: boolean;
    error?: { code?: number; err_code?: number; description?: string };
  };
  try {
    reply = JSON.parse(decoder.decode(data));
  } catch {
    return new Error("unreadable JetStream ack");
  }
  if (reply.error) {
    const e = reply.error;
    return new Error(`JetStream refused the message: ${e.description} (${e.err_code ?? e.code})`);
  }
  if (!reply.stream || typeof reply.seq !== "number")
    return new Error("JetStream ack without a stream");
  return { stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true };
}
