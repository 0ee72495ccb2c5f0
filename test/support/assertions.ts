import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../clients/src/gen/google/rpc/status_pb.js";

/** Awaits a call that must fail; checks its code and its one ErrorInfo (and reason, if given). */
export async function expectError(
  call: Promise<unknown>,
  code: Code,
  reason?: string,
): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, "the call should have failed").toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  expect({ code: Code[err.code], message: err.rawMessage }).toMatchObject({ code: Code[code] });
  const reasons = err.findDetails(ErrorInfoSchema).map((i) => i.reason);
  expect(reasons).toHaveLength(1);
  if (reason !== undefined) expect(reasons).toEqual([reason]);
  return err;
}

/** The fields the error's google.rpc.BadRequest names. */
export function badFields(err: ConnectError): string[] {
  return err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));
}

export const ms = (ts: Timestamp | undefined) => timestampDate(ts!).getTime();

/** A timestamp with millisecond precision, near now. */
export function expectMillisecondTimestamp(ts: Timestamp | undefined): void {
  expect(ts).toBeDefined();
  expect(ts!.nanos % 1_000_000).toBe(0);
  expect(Math.abs(ms(ts) - Date.now())).toBeLessThan(5 * 60_000);
}

export { pool } from "./pool.js";

/** A Connect error as JSON (a unary body, or an end-stream's `error`). */
export type ConnectErrorJson = {
  code?: string;
  message?: string;
  details?: { type: string; value: string }[];
};

/** The ErrorInfo reason among a raw Connect error's JSON details. */
export function reasonOfConnectJson(error: ConnectErrorJson | undefined): string | undefined {
  const info = error?.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return info && fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).reason;
}

/** The fields a raw Connect error's google.rpc.BadRequest detail names. */
export function badFieldsOfConnectJson(error: ConnectErrorJson | undefined): string[] {
  const br = error?.details?.find((d) => d.type === "google.rpc.BadRequest");
  if (!br) return [];
  return fromBinary(BadRequestSchema, Buffer.from(br.value, "base64")).fieldViolations.map(
    (v) => v.field,
  );
}

/** A raw `grpc-status-details-bin` (bytes, or base64 text) as a google.rpc.Status. */
function statusOf(bin: Uint8Array | string | undefined) {
  const bytes = typeof bin === "string" ? Buffer.from(bin, "base64") : (bin ?? new Uint8Array());
  return fromBinary(StatusSchema, bytes);
}

/** The code and ErrorInfo reason of a raw `grpc-status-details-bin` (bytes, or base64 text). */
export function statusDetailsOf(bin: Uint8Array | string | undefined): {
  code: number;
  reason: string | undefined;
} {
  const status = statusOf(bin);
  const info = status.details.find((d) => d.typeUrl.endsWith("/google.rpc.ErrorInfo"));
  return { code: status.code, reason: info && fromBinary(ErrorInfoSchema, info.value).reason };
}

/** The fields the google.rpc.BadRequest of a raw `grpc-status-details-bin` names. */
export function badFieldsOfStatus(bin: Uint8Array | string | undefined): string[] {
  const bad = statusOf(bin).details.find((d) => d.typeUrl.endsWith("/google.rpc.BadRequest"));
  return bad ? fromBinary(BadRequestSchema, bad.value).fieldViolations.map((v) => v.field) : [];
}
