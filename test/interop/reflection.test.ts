import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ServerReflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../clients/src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../clients/src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startTestServer, type TestServer } from "../support/server.js";

/** What grpcurl and buf curl ask the grpc-js front door when they have no .proto files. */
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

async function ask(requests: ServerReflectionRequest["messageRequest"][], alpha = false) {
  const client = createClient(
    alpha ? ServerReflectionV1Alpha : ServerReflection,
    t.transport("grpc"),
  );
  async function* input() {
    for (const messageRequest of requests) yield { messageRequest } as never;
  }
  const out: ServerReflectionResponse["messageResponse"][] = [];
  for await (const res of client.serverReflectionInfo(input()))
    out.push(res.messageResponse as never);
  return out;
}

describe("gRPC server reflection", () => {
  it("lists the services and serves their files with every dependency", async () => {
    const [list, file] = await ask([
      { case: "listServices", value: "" },
      { case: "fileContainingSymbol", value: "groups.v1.GroupsService" },
    ]);
    expect(
      list.case === "listServicesResponse" && list.value.service.map((s) => s.name).sort(),
    ).toEqual([
      "groups.v1.EventsService",
      "groups.v1.GroupsService",
      "groups.v1.OrganizationsService",
      "grpc.health.v1.Health",
    ]);
    expect(file.case).toBe("fileDescriptorResponse");
    const names =
      file.case === "fileDescriptorResponse"
        ? file.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)
        : [];
    expect(names).toEqual(
      expect.arrayContaining([
        "groups/v1/groups.proto",
        "groups/v1/common.proto",
        "groups/v1/organizations.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
  });

  it("answers messages by name and files by file name, and NOT_FOUND for unknown ones (v1alpha too)", async () => {
    const [message, byName, unknown] = await ask(
      [
        { case: "fileContainingSymbol", value: "groups.v1.Event" },
        { case: "fileByFilename", value: "groups/v1/organizations.proto" },
        { case: "fileContainingSymbol", value: "nope.v1.Nothing" },
      ],
      true,
    );
    expect(message.case, JSON.stringify(message.value)).toBe("fileDescriptorResponse");
    expect(byName.case).toBe("fileDescriptorResponse");
    expect(unknown.case === "errorResponse" && unknown.value.errorCode).toBe(5);
  });
});
