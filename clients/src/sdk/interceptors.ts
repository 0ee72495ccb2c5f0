import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Sends `Authorization: Bearer <token>` on every call (token may be a function, e.g. for refreshing JWTs). */
export function bearer(token: string | (() => string | Promise<string>)): Interceptor {
  return (next) => async (req) => {
    req.header.set(
      "authorization",
      `Bearer ${typeof token === "function" ? await token() : token}`,
    );
    return next(req);
  };
}

/**
 * Retries UNAVAILABLE (a replica shutting down, a database hiccup) with
 * jittered backoff — only for calls that are safe to repeat: reads, CreateGroup
 * when it carries a request_id (the server deduplicates it), and any call the
 * server provably never started (see `neverReachedServer`). Other writes are
 * never repeated, since the first attempt may have committed.
 */
export function retryUnavailable(
  opts: { attempts?: number; baseDelayMs?: number } = {},
): Interceptor {
  const attempts = opts.attempts ?? 3;
  const base = opts.baseDelayMs ?? 50;
  return (next) => async (req) => {
    // A stream's request messages are read once, as they are sent: a second
    // attempt would send none (over gRPC the server then answers UNIMPLEMENTED,
    // hiding the real error). The caller reopens a stream, e.g. from `after`.
    if (req.stream) return next(req);
    const message = req.message as { requestId?: string };
    const repeatable =
      // Reads are marked side-effect free in the protos: repeating one is always safe.
      req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      (req.method.name === "CreateGroup" && !!message?.requestId);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const code = ConnectError.from(err).code;
        const safe = repeatable || neverReachedServer(err);
        if (!safe || code !== Code.Unavailable || attempt >= attempts || req.signal.aborted)
          throw err;
        await new Promise((r) => setTimeout(r, Math.random() * base * 2 ** attempt));
      }
    }
  };
}

/**
 * connect-node reports an HTTP/2 stream the server refused as INTERNAL. A
 * draining server refuses streams opened after its GOAWAY (RST_STREAM
 * REFUSED_STREAM), so during every rolling restart some calls would fail as
 * INTERNAL. gRPC's HTTP/2 mapping says UNAVAILABLE, which is what this makes of
 * them; `retryUnavailable` then repeats them, writes included.
 */
export function refusedStreamIsUnavailable(): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code !== Code.Internal || !neverReachedServer(e)) throw err;
      throw new ConnectError(e.rawMessage, Code.Unavailable, e.metadata, undefined, e);
    }
  };
}

/**
 * True when the error proves the server did no work for the call: the
 * connection was refused, or the server refused the HTTP/2 stream, which
 * RFC 9113 §8.7 defines as "closed before any processing".
 */
export function neverReachedServer(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === "ECONNREFUSED") return true;
    // Node names the reset code only in the message ("…error code NGHTTP2_REFUSED_STREAM").
    if (code === "ERR_HTTP2_STREAM_ERROR" && e.message.includes("NGHTTP2_REFUSED_STREAM"))
      return true;
  }
  return false;
}
