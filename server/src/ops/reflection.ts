import {
  create,
  createRegistry,
  fromBinary,
  toBinary,
  type DescFile,
  type DescService,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as v1 from "../../../clients/src/gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../../clients/src/gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * gRPC server reflection (v1 and v1alpha) on the grpc-js front door, so
 * `grpcurl` and `buf curl` work without the .proto files. Answers come from
 * the generated descriptors, with their real file names and dependencies. It
 * only describes the API, so it sits outside the authenticated pipeline.
 */
export function addReflection(server: grpc.Server, services: DescService[]): void {
  const files = new Map<string, DescFile>();
  const collect = (f: DescFile) => {
    // DescFile.name drops ".proto"; clients ask by the full file name.
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    f.dependencies.forEach(collect);
  };
  services.forEach((s) => collect(s.file));
  const registry = createRegistry(...files.values());
  const names = services.map((s) => s.typeName);
  for (const api of [v1, v1alpha] as const) {
    const method = api.ServerReflection.method.serverReflectionInfo;
    const definition = {
      ServerReflectionInfo: {
        path: `/${api.ServerReflection.typeName}/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as never)),
        requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
        responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as never)),
        responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
      },
    };
    server.addService(definition as grpc.ServiceDefinition, {
      ServerReflectionInfo: (
        call: grpc.ServerDuplexStream<v1.ServerReflectionRequest, unknown>,
      ) => {
        call.on("data", (req: v1.ServerReflectionRequest) => {
          call.write(
            create(method.output, { originalRequest: req, messageResponse: answer(req) } as never),
          );
        });
        call.on("end", () => call.end());
      },
    });
  }

  function answer(req: v1.ServerReflectionRequest): v1.ServerReflectionResponse["messageResponse"] {
    const r = req.messageRequest;
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: create(v1.ErrorResponseSchema, {
        errorCode: grpc.status.NOT_FOUND,
        errorMessage: `${what} not found`,
      }),
    });
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: create(v1.ListServiceResponseSchema, { service: names.map((name) => ({ name })) }),
        };
      case "fileByFilename": {
        const file = files.get(r.value);
        return file ? descriptors(file) : notFound(`file ${r.value}`);
      }
      case "fileContainingSymbol": {
        const symbol = r.value.replace(/^\./, "");
        const desc =
          registry.get(symbol) ??
          registry.get(symbol.slice(0, Math.max(0, symbol.lastIndexOf("."))));
        const file = desc && "file" in desc ? desc.file : undefined;
        return file ? descriptors(file) : notFound(`symbol ${symbol}`);
      }
      default:
        return {
          case: "errorResponse",
          value: create(v1.ErrorResponseSchema, {
            errorCode: grpc.status.UNIMPLEMENTED,
            errorMessage: "this server declares no extensions",
          }),
        };
    }
  }

  /** The file and everything it imports, each once, as serialized FileDescriptorProtos. */
  function descriptors(file: DescFile): v1.ServerReflectionResponse["messageResponse"] {
    const seen = new Map<string, DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.set(f.name, f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: create(v1.FileDescriptorResponseSchema, {
        fileDescriptorProto: [...seen.values()].map((f) =>
          toBinary(FileDescriptorProtoSchema, f.proto),
        ),
      }),
    };
  }
}
