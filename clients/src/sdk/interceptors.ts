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
 * jittered backoff — only for calls that are safe to repeat: reads, and
 * CreateGroup when it carries a request_id (the server deduplicates it).
 * Other writes are never repeated, since the first attempt may have committed.
 */
export function retryUnavailable(
  opts: { attempts?: number; baseDelayMs?: number } = {},
): Interceptor {
  const attempts = opts.attempts ?? 3;
  const base = opts.baseDelayMs ?? 50;
  return (next) => async (req) => {
    const message = req.stream ? undefined : (req.message as { requestId?: string });
    const safe =
      // Reads are marked side-effect free in the protos: repeating one is always safe.
      req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      (req.method.name === "CreateGroup" && !!message?.requestId);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (!safe || code !== Code.Unavailable || attempt >= attempts || req.signal.aborted)
          throw err;
        await new Promise((r) => setTimeout(r, Math.random() * base * 2 ** attempt));
      }
    }
  };
}
