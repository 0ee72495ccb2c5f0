import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";

/**
 * The longest deadline a Node timer can hold: 2^31 − 1 ms, ~24.8 days.
 *
 * The wire allows far longer ones (`grpc-timeout` up to 99999999H,
 * `connect-timeout-ms` up to 10 digits), and some clients send them to mean
 * "no deadline" on long-lived event tails. Unclamped, grpc-js wraps them to 32
 * bits (3000000S becomes negative: the call expires at once) and connect-node's
 * timer overflows to 1 ms. Like grpc-go, the server keeps the longest deadline
 * it can instead: after 24.8 days the difference does not matter.
 */
export const MAX_DEADLINE_MS = 2 ** 31 - 1;

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};
const CLAMPED_GRPC_TIMEOUT = `${Math.floor(MAX_DEADLINE_MS / 1000)}S`;

/** A `grpc-timeout` value, clamped to MAX_DEADLINE_MS; malformed values are left for the protocol to refuse. */
export function clampGrpcTimeout(value: string): string {
  const m = GRPC_TIMEOUT.exec(value);
  return m && Number(m[1]) * GRPC_UNIT_MS[m[2]] > MAX_DEADLINE_MS ? CLAMPED_GRPC_TIMEOUT : value;
}

/** Clamps the deadline headers of a request to PORT (Connect, gRPC and gRPC-Web), in place. */
export function clampDeadlineHeaders(headers: IncomingHttpHeaders): void {
  const grpcTimeout = headers["grpc-timeout"];
  if (typeof grpcTimeout === "string") headers["grpc-timeout"] = clampGrpcTimeout(grpcTimeout);
  const connectTimeout = headers["connect-timeout-ms"];
  if (
    typeof connectTimeout === "string" &&
    /^\d{1,10}$/.test(connectTimeout) &&
    Number(connectTimeout) > MAX_DEADLINE_MS
  )
    headers["connect-timeout-ms"] = String(MAX_DEADLINE_MS);
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** PORT's handler, seeing every request's deadline headers clamped. */
export function withClampedDeadlines(handler: Handler): Handler {
  return (req, res) => {
    clampDeadlineHeaders(req.headers);
    handler(req, res);
  };
}

let installed = false;

/**
 * The same clamp for GRPC_PORT. grpc-js reads the header in its call's
 * constructor, before any interceptor runs, so this wraps the one method that
 * parses it, as grpc-request-faults.ts does for request faults (covered by
 * test/integration/deadlines.test.ts, which fails if an update of grpc-js moves it).
 */
export function clampGrpcJsDeadlines(): void {
  if (installed) return;
  installed = true;
  const proto = BaseServerInterceptingCall.prototype as unknown as {
    handleTimeoutHeader(value: string): void;
  };
  const handleTimeoutHeader = proto.handleTimeoutHeader;
  proto.handleTimeoutHeader = function (value: string) {
    return handleTimeoutHeader.call(this, clampGrpcTimeout(String(value)));
  };
}
