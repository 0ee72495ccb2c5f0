import { create, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { Health } from "../../clients/src/gen/grpc/health/v1/health_pb.js";

/** The two services the load generator calls, over one front door. */
export interface DoorClients {
  groups: Client<typeof GroupsService>;
  health: Client<typeof Health>;
  close(): void;
}

/**
 * gRPC on GRPC_PORT over one HTTP/2 connection. Default `grpc-js`:
 * @grpc/grpc-js with the generated protobuf-es codecs — measured here at
 * ~0.14 ms of load-generator CPU per call against ~0.5 ms for connect-node's
 * gRPC transport, which matters when the load generator shares two cores
 * with the server and MariaDB (issue 7's reference figures also use a grpc-js
 * client). `connect`: connect-node's transport, what the SDK's
 * `createNodeClients` uses.
 */
export function grpcClients(url: string, impl: "connect" | "grpc-js"): DoorClients {
  if (impl === "grpc-js") {
    const channel = new grpc.Channel(
      url.replace(/^http:\/\//, ""),
      grpc.credentials.createInsecure(),
      {},
    );
    return {
      groups: grpcJsClient(GroupsService, channel),
      health: grpcJsClient(Health, channel),
      close: () => channel.close(),
    };
  }
  const transport = createGrpcTransport({ baseUrl: url });
  return {
    groups: createClient(GroupsService, transport),
    health: createClient(Health, transport),
    close: () => undefined,
  };
}

/** Connect on PORT as a browser app speaks it: JSON over HTTP/1.1 (keep-alive). */
export function connectClients(url: string): DoorClients {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  return {
    groups: createClient(GroupsService, transport),
    health: createClient(Health, transport),
    close: () => undefined,
  };
}

/** Unary methods of a protobuf-es service as promise-returning functions over a grpc-js channel. */
function grpcJsClient<S extends DescService>(service: S, channel: grpc.Channel): Client<S> {
  const client = new grpc.Client("unused", grpc.credentials.createInsecure(), {
    channelOverride: channel,
  });
  const out: Record<string, (req: object) => Promise<unknown>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    const serialize = (m: object) =>
      Buffer.from(toBinary(method.input, create(method.input, m as never)));
    const deserialize = (b: Buffer) => fromBinary(method.output, b);
    out[method.localName] = (req) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(path, serialize, deserialize, req, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      );
  }
  return out as unknown as Client<S>;
}
