import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
} from "@bufbuild/protobuf";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceBinding } from "./connect-door.js";
import { binaryFieldFaults } from "./decode-faults.js";
import { frameworkError, STATUS_DETAILS_HEADER, statusDetailsBin } from "./errors.js";
import type { CallPipeline } from "./pipeline.js";

/**
 * Serves the same bindings on @grpc/grpc-js (GRPC_PORT): the fast path for
 * internal gRPC callers. Messages are (de)serialized with the generated
 * protobuf-es descriptors, so both front doors share one implementation.
 */
export function addGrpcServices(
  server: grpc.Server,
  bindings: ServiceBinding[],
  pipeline: CallPipeline,
): void {
  for (const { service, handlers } of bindings) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const streaming = method.methodKind === "server_streaming";
      if (method.methodKind !== "unary" && !streaming) continue;
      definition[method.name] = {
        path: `/${service.typeName}/${method.name}`,
        requestStream: false,
        responseStream: streaming,
        requestSerialize: serializer(method.input),
        requestDeserialize: (bytes: Buffer) => decodeRequest(method.input, bytes),
        responseSerialize: serializer(method.output),
        responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      };
      const handler = handlers[method.localName] as never;
      implementation[method.name] = streaming
        ? serverStreaming(method, handler, pipeline)
        : unary(method, handler, pipeline);
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
}

const serializer = (desc: DescMessage) => (message: unknown) =>
  Buffer.from(toBinary(desc, message as never));

/**
 * A request message that does not decode. grpc-js would answer a deserializer
 * that throws with INTERNAL and the decoder's words alone, before any handler
 * runs; decoding here lets the handler answer INVALID_ARGUMENT naming every
 * bad field instead.
 */
class UndecodableRequest {
  constructor(readonly error: ConnectError) {}
}

function decodeRequest(desc: DescMessage, bytes: Buffer): unknown {
  try {
    return fromBinary(desc, bytes);
  } catch (err) {
    const message = `Error deserializing request: ${err instanceof Error ? err.message : err}`;
    return new UndecodableRequest(
      frameworkError(Code.InvalidArgument, message, () => binaryFieldFaults(desc, bytes)),
    );
  }
}

const CANCELLED = new Error("the call was cancelled or has ended");

function unary(
  method: DescMethod,
  handler: (req: unknown, ctx: unknown) => Promise<unknown>,
  pipeline: CallPipeline,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    if (call.request instanceof UndecodableRequest) return callback(grpcError(call.request.error));
    const abort = new AbortController();
    // grpc-js reports every finished call as cancelled; a shared reason spares
    // a DOMException (and its stack trace) per call.
    call.on("cancelled", () => abort.abort(CANCELLED));
    pipeline
      .run(
        method,
        call.request,
        {
          protocol: "grpc",
          requestHeaders: headersOf(call.metadata),
          signal: abort.signal,
          timeoutMs: timeoutOf(call),
        },
        handler,
      )
      .then(
        (res) => callback(null, create(method.output, res as never)),
        (err: unknown) => callback(grpcError(err)),
      );
  };
}

function serverStreaming(
  method: DescMethod,
  handler: (req: unknown, ctx: unknown) => AsyncIterable<unknown>,
  pipeline: CallPipeline,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return async (call) => {
    if (call.request instanceof UndecodableRequest) {
      call.emit("error", grpcError(call.request.error));
      return;
    }
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort());
    call.on("close", () => abort.abort());
    const transport = {
      protocol: "grpc" as const,
      requestHeaders: headersOf(call.metadata),
      signal: abort.signal,
    };
    try {
      for await (const res of pipeline.runStream(method, call.request, transport, handler)) {
        if (abort.signal.aborted) break;
        if (!call.write(create(method.output, res as never)))
          await once(call, "drain", { signal: abort.signal });
      }
      if (!abort.signal.aborted) call.end();
    } catch (err) {
      if (!abort.signal.aborted) call.emit("error", grpcError(err));
    }
  };
}

/** Milliseconds left until the client's deadline, if it set one. */
function timeoutOf(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at - Date.now() : undefined;
}

/** Text metadata as Headers (binary `-bin` entries are not needed by handlers). */
function headersOf(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === "string") headers.set(key, value);
  }
  return headers;
}

/** The pipeline only throws ConnectError; carry its code, message and details over. */
function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const wire = err instanceof ConnectError ? err : new ConnectError("internal error", 13);
  const metadata = new grpc.Metadata();
  metadata.set(STATUS_DETAILS_HEADER, Buffer.from(statusDetailsBin(wire)));
  return { code: wire.code as number as grpc.status, details: wire.rawMessage, metadata };
}
