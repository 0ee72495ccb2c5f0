import type {
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import type { Authorizer } from "../auth/authorization.js";
import type { Principal } from "../auth/principal.js";
import type { RateLimiter } from "../auth/rate-limit.js";
import { CallDeadline, deadlineExceeded } from "../domain/deadline.js";
import { DomainError } from "../domain/errors.js";
import { newUlid } from "../domain/ids.js";
import type { Metrics } from "../ops/metrics.js";
import { toConnectError } from "./errors.js";

/** What a handler knows about its call, whichever front door it came through. */
export interface CallContext {
  readonly requestId: string;
  readonly method: DescMethod;
  readonly requestHeaders: Headers;
  readonly signal: AbortSignal;
  /** The call's logger: its lines carry the request id, trace id, RPC and caller. */
  readonly log: Logger;
  /** The authenticated caller; undefined only for public services (health). */
  principal?: Principal;
  /**
   * When a unary call stops being worth finishing (its time ran out or its
   * client left): handed to the domain, which starts no transaction and
   * sends no COMMIT past it. Passed by hand, not carried by an
   * AsyncLocalStorage: on Node.js 20 that turns on a hook for every promise
   * the process makes, 6–13 % of a GetGroup call's server CPU (BENCHMARKS.md,
   * `npm run bench:ab`).
   * Streams have none: only their client ends them.
   */
  readonly deadline?: CallDeadline;
}

/**
 * A call's context. Its logger is made on first use: most calls log only
 * their closing line, which the pipeline writes with the same fields
 * directly, so they never pay for a pino child logger.
 */
class Call implements CallContext {
  principal?: Principal;
  deadline?: CallDeadline;
  private logger?: Logger;

  constructor(
    readonly requestId: string,
    readonly method: DescMethod,
    readonly requestHeaders: Headers,
    readonly signal: AbortSignal,
    private readonly root: Logger,
    /** What every line of this call carries. */
    readonly fields: { requestId: string; traceId: string; rpc: string; caller?: string },
  ) {}

  get log(): Logger {
    return (this.logger ??= this.root.child(this.fields));
  }
}

/** The organization an organization-limited caller is confined to (undefined: deployment-wide). */
export const organizationScope = (ctx: CallContext): string | undefined =>
  ctx.principal?.organizationId;

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
  /** The time the client gave the call, if it set a deadline. */
  timeoutMs?: number;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

export interface PipelineOptions {
  /** Services callable without credentials (health checks). */
  publicServices?: string[];
  metrics?: Metrics;
  /** Unary calls: the deadline of calls that set none, and the cap on those that do. */
  deadlines?: { defaultMs: number; maxMs: number };
}

export interface Guards {
  authenticator: Authenticator;
  authorizer: Authorizer;
  rateLimiter: RateLimiter;
}

/**
 * The one call pipeline both front doors share: request id, authentication,
 * rate limit, authorization (permission and tenancy), deadline, one log line
 * and metrics per call, and error mapping (only ConnectError leaves it). Also
 * drains calls for a graceful stop.
 */
export class CallPipeline {
  private readonly stopping = new AbortController();
  private readonly publicServices: Set<string>;
  private inFlight = 0;
  private idle: (() => void) | undefined;

  constructor(
    private readonly log: Logger,
    private readonly guards: Guards,
    private readonly opts: PipelineOptions = {},
  ) {
    this.publicServices = new Set(opts.publicServices ?? []);
  }

  /**
   * Starts a graceful stop: new calls are refused with UNAVAILABLE, streams end
   * cleanly, and the promise resolves when in-flight unary calls have finished.
   */
  drain(): Promise<void> {
    this.stopping.abort();
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.idle = resolve));
  }

  async run<Req, Res>(
    method: DescMethod,
    req: Req,
    call: TransportCall,
    handler: (req: Req, ctx: CallContext) => Promise<Res>,
  ): Promise<Res> {
    // A plain timestamp and one timer, not AbortSignal.timeout/any: those cost
    // a DOMException and event-target bookkeeping on every call.
    const budget = this.budgetMs(call.timeoutMs);
    const ctx = this.context(method, call, call.signal);
    const started = performance.now();
    this.inFlight++;
    try {
      await this.admit(method, req, call, ctx);
      const deadline = (ctx.deadline = new CallDeadline(call.signal, started + budget));
      const res = await racing(deadline, handler(req, ctx));
      this.finish(ctx, call, started, "ok");
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
    // Streams (StreamEvents tails) live as long as the client wants: only its own deadline applies.
    const signal = AbortSignal.any([call.signal, this.stopping.signal]);
    const ctx = this.context(method, call, signal);
    const started = performance.now();
    // The client's deadline aborts the signal too (Connect's doors), and that
    // client is still there to be told.
    const expired = () =>
      call.signal.aborted &&
      call.signal.reason instanceof ConnectError &&
      call.signal.reason.code === Code.DeadlineExceeded;
    try {
      await this.admit(method, req, call, ctx);
      yield* handler(req, ctx);
      if (expired()) throw deadlineExceeded();
      this.finish(ctx, call, started, "ok");
    } catch (err) {
      if (expired()) throw this.fail(deadlineExceeded(), ctx, call, started);
      if (call.signal.aborted) {
        this.finish(ctx, call, started, "canceled");
        return; // the caller went away; nobody to tell
      }
      throw this.fail(err, ctx, call, started);
    }
  }

  private async admit(
    method: DescMethod,
    req: unknown,
    call: TransportCall,
    ctx: Call,
  ): Promise<void> {
    // Health stays answerable while calls drain: NOT_SERVING is its answer then.
    if (this.publicServices.has(method.parent.typeName)) return;
    if (this.stopping.signal.aborted) {
      throw new DomainError(
        "unavailable",
        "SHUTTING_DOWN",
        "the server is shutting down; retry on another replica",
      );
    }
    const principal = await this.guards.authenticator.authenticate(call.requestHeaders);
    ctx.principal = principal;
    ctx.fields.caller = principal.id;
    this.guards.rateLimiter.take(principal.id);
    this.guards.authorizer.authorize(method, req as Record<string, unknown>, principal);
  }

  /** The time a unary call may take: the client's deadline capped, or the default. */
  private budgetMs(clientMs: number | undefined): number {
    const d = this.opts.deadlines ?? { defaultMs: 30_000, maxMs: 60_000 };
    return clientMs === undefined ? d.defaultMs : Math.max(1, Math.min(clientMs, d.maxMs));
  }

  private context(method: DescMethod, call: TransportCall, signal: AbortSignal): Call {
    const offered = call.requestHeaders.get("x-request-id");
    const requestId = offered && REQUEST_ID.test(offered) ? offered : newUlid();
    // W3C trace context when the caller sends it, so logs join the caller's trace.
    const traceId =
      TRACEPARENT.exec(call.requestHeaders.get("traceparent") ?? "")?.[1] ?? requestId;
    return new Call(requestId, method, call.requestHeaders, signal, this.log, {
      requestId,
      traceId,
      rpc: `${method.parent.typeName}/${method.name}`,
    });
  }

  private fail(err: unknown, ctx: Call, call: TransportCall, started: number): ConnectError {
    const wire = toConnectError(err, ctx.log);
    this.finish(ctx, call, started, Code[wire.code], wire.rawMessage);
    return wire;
  }

  /** One readable line and the metrics of a finished call. */
  private finish(
    ctx: Call,
    call: TransportCall,
    started: number,
    code: string,
    error?: string,
  ): void {
    const seconds = (performance.now() - started) / 1000;
    const labels = {
      service: ctx.method.parent.typeName,
      method: ctx.method.name,
      door: call.protocol,
    };
    this.opts.metrics?.rpcs.inc({ ...labels, code });
    this.opts.metrics?.rpcSeconds.observe(labels, seconds);
    this.log.info(
      { ...ctx.fields, door: call.protocol, code, ms: Math.round(seconds * 1e4) / 10, error },
      `${ctx.method.name} ${code}`,
    );
  }
}

/**
 * The handler's answer, or DEADLINE_EXCEEDED as soon as the deadline passes —
 * unless a COMMIT is on its way then, whose outcome is the answer (see CallDeadline).
 */
function racing<T>(deadline: CallDeadline, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    const expire = () => deadline.expire(() => reject(deadlineExceeded()));
    const ms = deadline.at - performance.now();
    if (ms <= 0) expire();
    else timer = setTimeout(expire, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
