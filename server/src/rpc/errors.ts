import { create, isMessage, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { anyPack, AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../../clients/src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../../clients/src/gen/google/rpc/status_pb.js";
import { DomainError, type ErrorKind } from "../domain/errors.js";
import type { FieldFault } from "./decode-faults.js";
import { isUnavailable } from "../store/errors.js";

/** `google.rpc.ErrorInfo.domain` of every error this service raises. */
export const ERROR_DOMAIN = "groups.v1";

const CODE_OF: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
};

/**
 * Field violations one error carries. On gRPC the whole status travels in
 * trailers (`grpc-message`, `grpc-status-details-bin`), and Node's HTTP/2
 * cannot send a header block over ~64 KiB: grpc-js then never answers and
 * connect-node resets the stream. 100 violations are ~17 KiB; the rest are
 * counted in ErrorInfo metadata `field_violations_total`.
 */
export const MAX_FIELD_VIOLATIONS = 100;
/** Longest error message sent (it is a trailer on gRPC too). */
export const MAX_ERROR_MESSAGE_CHARS = 1024;

const clip = (message: string) =>
  message.length <= MAX_ERROR_MESSAGE_CHARS
    ? message
    : `${message.slice(0, MAX_ERROR_MESSAGE_CHARS - 16)}… (truncated)`;

function connectError(
  code: Code,
  reason: string,
  message: string,
  extra: {
    metadata?: Record<string, string>;
    violations?: { field: string; description: string }[];
    retryAfterMs?: number;
  } = {},
): ConnectError {
  const violations = extra.violations ?? [];
  const metadata = { ...(extra.metadata ?? {}) };
  if (violations.length > MAX_FIELD_VIOLATIONS) {
    metadata.field_violations_total = String(violations.length);
  }
  const details: { desc: DescMessage; value: Record<string, unknown> }[] = [
    { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN, metadata } },
  ];
  if (violations.length) {
    details.push({
      desc: BadRequestSchema,
      value: { fieldViolations: violations.slice(0, MAX_FIELD_VIOLATIONS) },
    });
  }
  if (extra.retryAfterMs !== undefined) {
    const ms = extra.retryAfterMs;
    details.push({
      desc: RetryInfoSchema,
      value: {
        retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
      },
    });
  }
  return new ConnectError(clip(message), code, undefined, details);
}

/**
 * The one place errors become wire errors: domain errors keep their kind and
 * reason; an exhausted or unreachable database is UNAVAILABLE; anything else
 * is INTERNAL with no internal detail, logged with its cause.
 */
export function toConnectError(err: unknown, log: Logger): ConnectError {
  if (err instanceof DomainError) {
    return connectError(CODE_OF[err.kind], err.reason, err.message, {
      metadata: err.metadata,
      violations: err.fieldViolations,
      retryAfterMs: err.retry?.retryAfterMs,
    });
  }
  if (err instanceof ConnectError) {
    return err.details.length > 0 ? err : frameworkError(err.code, err.rawMessage);
  }
  if (isUnavailable(err)) {
    log.warn({ err }, "database unavailable");
    return connectError(
      Code.Unavailable,
      "DATABASE_UNAVAILABLE",
      "the database is unavailable, retry later",
    );
  }
  log.error({ err }, "internal error");
  return connectError(Code.Internal, "INTERNAL", "internal error");
}

/**
 * An error a framework raised (a body that does not decode, one over the size
 * limit, a compression it does not speak), given the ErrorInfo every error of
 * this service carries and, for a body that does not decode, a BadRequest
 * naming every bad field (`faults`: read from the body again, see
 * decode-faults.ts). Most arise before a call reaches the pipeline, so both
 * front doors add these details to their answers.
 */
export function frameworkError(
  code: Code,
  message: string,
  faults: () => FieldFault[] = () => [],
): ConnectError {
  // A call with no request message at all: the caller's fault, not a method
  // the server lacks (grpc-js and connect-node both say UNIMPLEMENTED).
  if (code === Code.Unimplemented && MISSING_MESSAGE.test(message)) code = Code.InvalidArgument;
  if (code === Code.InvalidArgument) {
    return connectError(code, "MALFORMED_REQUEST", message, { violations: faults() });
  }
  if (code === Code.ResourceExhausted && /larger than|readMaxBytes|writeMaxBytes/.test(message)) {
    return connectError(code, "MESSAGE_TOO_LARGE", message);
  }
  return connectError(code, Code[code].replace(/(?<!^)([A-Z])/g, "_$1").toUpperCase(), message);
}

const MISSING_MESSAGE = /^(Received no request message|protocol error: missing input message)/;

/** A ConnectError's details as google.protobuf.Any, for the grpc-js front door's status details. */
function detailsAsAny(err: ConnectError): Any[] {
  return err.details.map((d) => {
    if ("desc" in d)
      return anyPack(d.desc, isMessage(d.value, d.desc) ? d.value : create(d.desc, d.value));
    return create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value });
  });
}

/** The gRPC trailer that carries an error's details. */
export const STATUS_DETAILS_HEADER = "grpc-status-details-bin";

/** `grpc-status-details-bin`: a serialized google.rpc.Status with the same code, message and details. */
export function statusDetailsBin(err: ConnectError): Uint8Array {
  return toBinary(
    StatusSchema,
    create(StatusSchema, { code: err.code, message: err.rawMessage, details: detailsAsAny(err) }),
  );
}
