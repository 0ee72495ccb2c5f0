import { createConnectTransport } from "@connectrpc/connect-web";
import {
  clampTimeout,
  clientsOver,
  interceptorsFor,
  type ClientOptions,
  type GroupsClients,
} from "./clients.js";

/**
 * Clients for browser apps: the Connect protocol (JSON) over fetch to PORT.
 * The service must list the page's origin in CORS_ALLOWED_ORIGINS.
 */
export function createWebClients(
  opts: ClientOptions & { baseUrl: string; binary?: boolean },
): GroupsClients {
  return clientsOver(
    createConnectTransport({
      baseUrl: opts.baseUrl,
      interceptors: interceptorsFor(opts),
      defaultTimeoutMs: clampTimeout(opts.timeoutMs ?? 10_000),
      useBinaryFormat: opts.binary ?? false,
    }),
  );
}
