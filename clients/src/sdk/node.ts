import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  clientsOver,
  transportOptions,
  type ClientOptions,
  type GroupsClients,
} from "./clients.js";
import { refusedStreamIsUnavailable } from "./interceptors.js";

export interface NodeClientOptions extends ClientOptions {
  /**
   * "grpc" (default): gRPC over HTTP/2 to GRPC_PORT, e.g. http://groups:50051 — the fast path.
   * "connect": the Connect protocol to PORT, e.g. http://groups:8080 — one port for everything.
   */
  protocol?: "grpc" | "connect";
  baseUrl: string;
}

/** Clients for Node services (gRPC to GRPC_PORT, or Connect to PORT). */
export function createNodeClients(opts: NodeClientOptions): GroupsClients {
  const common = {
    baseUrl: opts.baseUrl,
    ...transportOptions(opts, [refusedStreamIsUnavailable()]),
  };
  return clientsOver(
    opts.protocol === "connect"
      ? createConnectTransport({ ...common, httpVersion: "1.1" })
      : createGrpcTransport(common),
    opts,
  );
}
