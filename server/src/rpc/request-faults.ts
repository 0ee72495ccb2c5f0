import { Code } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * The frameworks answer some requests they cannot read with INTERNAL: a body
 * that is not protobuf ("parse binary: …"), a broken compressed body, a
 * compressed frame without an encoding. Those are the caller's fault, and an
 * INTERNAL would claim a server bug, so they become INVALID_ARGUMENT. Only
 * framework errors about the request are rewritten: our own INTERNAL ("internal
 * error") and failures to serialize a response stay INTERNAL.
 */
const isRequestFault = (code: string | number, message: string) =>
  (code === "internal" || code === String(Code.Internal) || code === Code.Internal) &&
  !/^(internal error|serialize )/.test(message);

const INVALID = "invalid_argument";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Rewrites a Connect, gRPC or gRPC-Web response whose error is a request fault. */
export async function rewriteRequestFaults(
  res: UniversalServerResponse,
): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web")) {
    return framed(res, mapFrames(res.body, 0x80, rewriteGrpcWebTrailer));
  }
  if (type.startsWith("application/grpc")) {
    if (res.header) rewriteGrpcStatus(res.header);
    return {
      ...res,
      body: res.body && afterBody(res.body, () => res.trailer && rewriteGrpcStatus(res.trailer)),
    };
  }
  if (type.startsWith("application/connect+")) {
    return framed(res, mapFrames(res.body, 0x02, rewriteConnectEndStream));
  }
  // Successful Connect unary answers pass untouched; only a 500 is read.
  if (res.status === 500 && type.startsWith("application/json") && res.body) {
    return rewriteConnectUnary(res, res.body);
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

function rewriteGrpcStatus(h: Headers): void {
  const message = decodeURIComponent(h.get("grpc-message") ?? "");
  if (h.get("grpc-status") !== null && isRequestFault(h.get("grpc-status")!, message))
    h.set("grpc-status", String(Code.InvalidArgument));
}

function rewriteGrpcWebTrailer(payload: Uint8Array): Uint8Array {
  // Trailers are ASCII lines ("key: value\r\n"); latin1 keeps every byte as is.
  const text = Buffer.from(payload).toString("latin1");
  const value = (key: string) =>
    new RegExp(`^${key}:\\s*(.*)$`, "im").exec(text)?.[1]?.trim() ?? "";
  const status = value("grpc-status");
  if (!isRequestFault(status, decodeURIComponent(value("grpc-message")))) return payload;
  return Buffer.from(
    text.replace(/^grpc-status:.*$/im, `grpc-status: ${Code.InvalidArgument}`),
    "latin1",
  );
}

function rewriteConnectEndStream(payload: Uint8Array): Uint8Array {
  const end = JSON.parse(decoder.decode(payload)) as { error?: { code: string; message?: string } };
  if (!end.error || !isRequestFault(end.error.code, end.error.message ?? "")) return payload;
  end.error.code = INVALID;
  return encoder.encode(JSON.stringify(end));
}

async function rewriteConnectUnary(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  const error = JSON.parse(bytes.toString("utf8")) as { code: string; message?: string };
  if (!isRequestFault(error.code, error.message ?? "")) return { ...res, body: once(bytes) };
  error.code = INVALID;
  return { ...framed(res, once(encoder.encode(JSON.stringify(error)))), status: 400 };
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
