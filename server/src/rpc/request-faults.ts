import { Code, type ConnectError } from "@connectrpc/connect";
import { codeFromString, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { FieldFault } from "./decode-faults.js";
import { frameworkError, STATUS_DETAILS_HEADER, statusDetailsBin } from "./errors.js";
import { DECOMPRESS } from "./request-body.js";

/** The fields of the request that do not decode (read on demand: only an error needs them). */
type Faults = () => FieldFault[];

/**
 * The frameworks answer some requests they cannot read with INTERNAL: a body
 * that is not protobuf ("parse binary: …"), a broken compressed body, a
 * compressed frame without an encoding. Those are the caller's fault, and an
 * INTERNAL would claim a server bug, so they become INVALID_ARGUMENT. Only
 * framework errors about the request are rewritten: our own INTERNAL ("internal
 * error") and failures to serialize a response stay INTERNAL.
 */
const isRequestFault = (code: Code, message: string) =>
  code === Code.Internal && !/^(internal error|serialize )/.test(message);

/**
 * A framework's error as this service answers it: a request fault is
 * INVALID_ARGUMENT, and an error without details (every error the pipeline
 * raises has them) gets its ErrorInfo (see frameworkError).
 */
function mended(code: Code, message: string, faults: Faults) {
  return frameworkError(
    isRequestFault(code, message) ? Code.InvalidArgument : code,
    message,
    faults,
  );
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Rewrites a Connect, gRPC or gRPC-Web error response that a framework wrote
 * rather than the pipeline: see mended.
 */
export async function rewriteRequestFaults(
  res: UniversalServerResponse,
  faults: Faults,
): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web")) {
    return framed(
      res,
      mapFrames(res.body, 0x80, (p) => rewriteGrpcWebTrailer(p, faults)),
    );
  }
  if (type.startsWith("application/grpc")) {
    if (res.header) rewriteGrpcStatus(res.header, faults);
    return {
      ...res,
      body:
        res.body &&
        afterBody(res.body, () => res.trailer && rewriteGrpcStatus(res.trailer, faults)),
    };
  }
  if (type.startsWith("application/connect+")) {
    return framed(
      res,
      mapFrames(res.body, 0x02, (p) => rewriteConnectEndStream(p, faults)),
    );
  }
  // Successful Connect unary answers pass untouched; only an error is read.
  if (res.status !== 200 && type.startsWith("application/json") && res.body) {
    return rewriteConnectUnary(res, res.body, faults);
  }
  return res;
}

/** A response with a new body whose length may differ: the transport frames it instead. */
function framed(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array> | undefined,
): UniversalServerResponse {
  const header = new Headers(res.header);
  header.delete("content-length");
  return { ...res, header, body };
}

/** A gRPC status's details, as its `-bin` header value. */
const detailsHeader = (wire: ConnectError) =>
  Buffer.from(statusDetailsBin(wire)).toString("base64");

function rewriteGrpcStatus(h: Headers, faults: Faults): void {
  const status = Number(h.get("grpc-status") ?? 0);
  if (status === 0 || h.has(STATUS_DETAILS_HEADER)) return;
  const message = decodeURIComponent(h.get("grpc-message") ?? "");
  const wire = mended(status, message, faults);
  h.set("grpc-status", String(wire.code));
  h.set(STATUS_DETAILS_HEADER, detailsHeader(wire));
}

function rewriteGrpcWebTrailer(payload: Uint8Array, faults: Faults): Uint8Array {
  // Trailers are ASCII lines ("key: value\r\n"); latin1 keeps every byte as is.
  const text = Buffer.from(payload).toString("latin1");
  const value = (key: string) =>
    new RegExp(`^${key}:\\s*(.*)$`, "im").exec(text)?.[1]?.trim() ?? "";
  const status = Number(value("grpc-status") || 0);
  if (status === 0 || value(STATUS_DETAILS_HEADER) !== "") return payload;
  const message = decodeURIComponent(value("grpc-message"));
  const wire = mended(status, message, faults);
  const lines = text
    .replace(/^grpc-status:.*$/im, `grpc-status: ${wire.code}`)
    .replace(/\r?\n?$/, "\r\n");
  return Buffer.from(`${lines}${STATUS_DETAILS_HEADER}: ${detailsHeader(wire)}\r\n`, "latin1");
}

type ConnectErrorJson = { code: string; message?: string; details?: unknown[] };

/** A Connect error body (unary, or an end-stream's `error`) with details, or undefined if it has them. */
function mendedJson(error: ConnectErrorJson, faults: Faults): ConnectErrorJson | undefined {
  if (error.details?.length) return undefined;
  const code = codeFromString(error.code) ?? Code.Unknown;
  return errorToJson(mended(code, error.message ?? "", faults), undefined) as ConnectErrorJson;
}

function rewriteConnectEndStream(payload: Uint8Array, faults: Faults): Uint8Array {
  const end = JSON.parse(decoder.decode(payload)) as { error?: ConnectErrorJson };
  const error = end.error && mendedJson(end.error, faults);
  if (!error) return payload;
  return encoder.encode(JSON.stringify({ ...end, error }));
}

async function rewriteConnectUnary(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
  faults: Faults,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  const encoding = res.header?.get("content-encoding") ?? "identity";
  const decompress = DECOMPRESS[encoding];
  if (!decompress) return { ...res, body: once(bytes) };
  const error = mendedJson(
    JSON.parse(decompress(bytes).toString("utf8")) as ConnectErrorJson,
    faults,
  );
  if (!error) return { ...res, body: once(bytes) };
  // Sent uncompressed: an error is small, and it is not worth compressing again.
  const mendedRes = framed(res, once(encoder.encode(JSON.stringify(error))));
  mendedRes.header!.delete("content-encoding");
  return { ...mendedRes, status: error.code === "invalid_argument" ? 400 : res.status };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

async function* afterBody(
  body: AsyncIterable<Uint8Array>,
  done: () => void,
): AsyncIterable<Uint8Array> {
  yield* body;
  done();
}

/**
 * Passes an enveloped stream through frame by frame (1 flag byte, 4 length
 * bytes, payload), rewriting the frames whose flags include `flag`.
 */
async function* mapFrames(
  body: AsyncIterable<Uint8Array> | undefined,
  flag: number,
  rewrite: (payload: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  if (!body) return;
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : Buffer.from(chunk);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const size = pending.readUInt32BE(1);
      const frame = pending.subarray(0, 5 + size);
      pending = pending.subarray(5 + size);
      if ((frame[0] & flag) === 0) {
        yield frame;
        continue;
      }
      const payload = rewrite(frame.subarray(5));
      const head = Buffer.alloc(5);
      head[0] = frame[0];
      head.writeUInt32BE(payload.length, 1);
      yield Buffer.concat([head, payload]);
    }
  }
  if (pending.length) yield pending;
}
