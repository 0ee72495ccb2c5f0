import type { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";
import { frameworkError, STATUS_DETAILS_HEADER, statusDetailsBin } from "./errors.js";

/**
 * grpc-js answers two kinds of unreadable request with INTERNAL, before any
 * handler or interceptor sees the call: an invalid grpc-timeout header and a
 * compressed message that does not decompress (a message that does not
 * deserialize is answered by grpc-door.ts, which decodes it). Those are the
 * caller's fault; INTERNAL would claim a server bug. It answers others (a message over the size limit) with no details,
 * where every error of this service carries an ErrorInfo. grpc-js offers no
 * hook for them, so this wraps the one method they all go through (covered by
 * test/security/fuzz.test.ts, which fails if an update of grpc-js moves them).
 */
const REQUEST_FAULT = /^(Invalid grpc-timeout value|Failed to decompress message)/;

let installed = false;

export function answerGrpcFrameworkErrorsWithDetails(): void {
  if (installed) return;
  installed = true;
  const proto = BaseServerInterceptingCall.prototype;
  const sendStatus = proto.sendStatus;
  proto.sendStatus = function (status) {
    // The pipeline's errors carry their details already (grpc-door.ts).
    if (status.code === grpc.status.OK || status.metadata?.get(STATUS_DETAILS_HEADER).length) {
      return sendStatus.call(this, status);
    }
    const message = status.details ?? "";
    const fault = status.code === grpc.status.INTERNAL && REQUEST_FAULT.test(message);
    const wire = frameworkError(
      (fault ? grpc.status.INVALID_ARGUMENT : status.code) as number as Code,
      message,
    );
    const metadata = status.metadata?.clone() ?? new grpc.Metadata();
    metadata.set(STATUS_DETAILS_HEADER, Buffer.from(statusDetailsBin(wire)));
    return sendStatus.call(this, { ...status, code: wire.code as number, metadata });
  };
}
