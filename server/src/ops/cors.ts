import type { IncomingMessage, ServerResponse } from "node:http";
import { cors as connectCors } from "@connectrpc/connect";
import corsMiddleware from "cors";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * CORS for browser apps on PORT: only the origins in CORS_ALLOWED_ORIGINS get
 * the Access-Control-* headers (a preflight from any other origin is answered
 * without them, so the browser refuses the call). Allowed and exposed headers
 * are Connect's and gRPC-Web's own, plus Authorization and request/trace ids.
 */
export function withCors(allowedOrigins: string[], handler: Handler): Handler {
  if (allowedOrigins.length === 0) return handler;
  const middleware = corsMiddleware({
    origin: allowedOrigins,
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, "Authorization", "X-Request-Id", "Traceparent"],
    exposedHeaders: [...connectCors.exposedHeaders, "X-Request-Id"],
    maxAge: 2 * 60 * 60,
  });
  return (req, res) => middleware(req, res, () => handler(req, res));
}
