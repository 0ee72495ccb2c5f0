import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

export interface GroupsErrorDetails {
  code: Code;
  /** The code's name, e.g. "NotFound". */
  codeName: string;
  message: string;
  /** Stable UPPER_SNAKE reason, e.g. GROUP_NOT_FOUND ("" if the error did not come from the service). */
  reason: string;
  metadata: Record<string, string>;
  /** Every bad field of an INVALID_ARGUMENT (from google.rpc.BadRequest). */
  fieldViolations: { field: string; description: string }[];
}

/** What the service said about a failed call, from any error a client throws. */
export function errorDetails(err: unknown): GroupsErrorDetails {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  return {
    code: e.code,
    codeName: Code[e.code],
    message: e.rawMessage,
    reason: info?.reason ?? "",
    metadata: { ...(info?.metadata ?? {}) },
    fieldViolations: e
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map(({ field, description }) => ({ field, description }))),
  };
}
