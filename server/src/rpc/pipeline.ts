import type {
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ulid } from "ulid";
import { DomainError } from "../domain/errors.js";
import { toConnectError } from "./errors.js";
import type { Authenticator } from "../auth/authenticator.js";

/** What a handler knows about its call, whichever front door it came through. */
export interface CallContext {
  readonly requestId: string;
  readonly method: DescMethod;
  readonly requestHeaders: Headers;
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/**
 * A service's handlers, protocol-neutral: an async function per unary RPC, an
 * async iterable per server-streaming RPC.
 */
export type Handlers<S extends DescService> = {
  [P in keyof S["method"]]: S["method"][P] extends DescMethodUnary<infer I, infer O>
    ? (req: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>>
    : S["method"][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (req: MessageShape<I>, ctx: CallContext) => AsyncIterable<MessageInitShape<O>>
      : never;
};

/** What a front door hands the pipeline for one call. */
export interface TransportCall {
  protocol: "grpc" | "connect";
  requestHeaders: Headers;
  signal: AbortSignal;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The one call pipeline both front doors share: request id, authentication,
 * logging, and error mapping (only ConnectError leaves it).
 */
export class CallPipeline {
  private readonly stopping = new AbortController();
  private inFlight = 0;
  private idle: (() => void) | undefined;

  constructor(
    private readonly log: Logger,
    private readonly authenticator: Authenticator,
  ) {}

  /**
   * Starts a graceful stop: new calls are refused with UNAVAILABLE, streams end
   * cleanly, and the promise resolves when in-flight unary calls have finished.
   */
  drain(): Promise<void> {
    this.stopping.abort();
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.idle = resolve));
  }

  private enter(): void {
    if (this.stopping.signal.aborted) {
      throw new DomainError(
        "unavailable",
        "SHUTTING_DOWN",
        "the server is shutting down; retry on another replica",
      );
    }
  }

  async run<Req, Res>(
    method: DescMethod,
    req: Req,
    call: TransportCall,
    handler: (req: Req, ctx: CallContext) => Promise<Res>,
  ): Promise<Res> {
    const ctx = this.context(method, call);
    const started = performance.now();
    this.inFlight++;
    try {
      this.enter();
      this.authenticator.authenticate(call.requestHeaders);
      const res = await handler(req, ctx);
      ctx.log.debug({ protocol: call.protocol, ms: performance.now() - started }, "ok");
      return res;
    } catch (err) {
      throw this.fail(err, ctx, call, started);
    } finally {
      if (--this.inFlight === 0) this.idle?.();
    }
  }

  /** The streaming twin of run(): errors before or between messages are mapped the same way. */
  async *runStream<Req, Res>(
    method: DescMethod,
    req: Req,
    call: TransportCall,
    handler: (req: Req, ctx: CallContext) => AsyncIterable<Res>,
  ): AsyncGenerator<Res> {
    // A stream also ends (cleanly) when the server drains.
    const signal = AbortSignal.any([call.signal, this.stopping.signal]);
    const ctx = { ...this.context(method, call), signal };
    const started = performance.now();
    try {
      this.enter();
      this.authenticator.authenticate(call.requestHeaders);
      yield* handler(req, ctx);
      ctx.log.debug({ protocol: call.protocol, ms: performance.now() - started }, "stream ended");
    } catch (err) {
      if (call.signal.aborted) return; // the caller went away; nobody to tell
      throw this.fail(err, ctx, call, started);
    }
  }

  private context(method: DescMethod, call: TransportCall): CallContext {
    const offered = call.requestHeaders.get("x-request-id");
    const requestId = offered && REQUEST_ID.test(offered) ? offered : ulid();
    const log = this.log.child({ requestId, rpc: `${method.parent.typeName}/${method.name}` });
    return { requestId, method, requestHeaders: call.requestHeaders, signal: call.signal, log };
  }

  private fail(err: unknown, ctx: CallContext, call: TransportCall, started: number): ConnectError {
    const wire = toConnectError(err, ctx.log);
    ctx.log.debug(
      { protocol: call.protocol, ms: performance.now() - started, code: wire.code },
      "error",
    );
    return wire;
  }
}
