import * as grpc from "@grpc/grpc-js";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";

/**
 * grpc-js answers three kinds of unreadable request with INTERNAL, before any
 * handler or interceptor sees the call: an invalid grpc-timeout header, a
 * compressed message that does not decompress, and a message that does not
 * deserialize. Those are the caller's fault; INTERNAL would claim a server
 * bug. grpc-js offers no hook for them, so this wraps the one method they all
 * go through (covered by test/security/fuzz.test.ts, which fails if an update
 * of grpc-js moves them).
 */
const REQUEST_FAULT =
  /^(Invalid grpc-timeout value|Failed to decompress message|Error deserializing request)/;

let installed = false;

export function answerGrpcRequestFaultsAsInvalidArgument(): void {
  if (installed) return;
  installed = true;
  const proto = BaseServerInterceptingCall.prototype;
  const sendStatus = proto.sendStatus;
  proto.sendStatus = function (status) {
    const fault = status.code === grpc.status.INTERNAL && REQUEST_FAULT.test(status.details ?? "");
    return sendStatus.call(
      this,
      fault ? { ...status, code: grpc.status.INVALID_ARGUMENT } : status,
    );
  };
}
