import { createConnectTransport } from "@connectrpc/connect-web";
import {
  clientsOver,
  transportOptions,
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
      ...transportOptions(opts),
      useBinaryFormat: opts.binary ?? false,
    }),
    opts,
  );
}
