import { randomBytes } from "node:crypto";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { pino } from "pino";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { loadConfig } from "../../server/src/config.js";
import type { ReaperOptions } from "../../server/src/domain/reaper.js";
import type { RelayOptions } from "../../server/src/events/relay.js";
import { startServer, type RunningServer } from "../../server/src/server.js";
import { createTestDatabase, storeEnv, type TestDatabase } from "./database.js";

/** The ways a client can reach the service; tests run the same checks through each. */
export const DOORS = ["grpc", "connect", "grpc-web"] as const;
export type Door = (typeof DOORS)[number];
/** Every door a transport can take: also Connect's binary format, and gRPC on PORT. */
export type AnyDoor = Door | "connect-proto" | "grpc-on-port";

export interface Clients {
  groups: Client<typeof GroupsService>;
  orgs: Client<typeof OrganizationsService>;
}

export interface TestServer {
  server: RunningServer;
  db: TestDatabase;
  apiKey: string;
  grpcAddress: string;
  httpUrl: string;
  /** Generated clients over the given front door: gRPC on GRPC_PORT (grpc-js); Connect and gRPC-Web on PORT. */
  clients(door: Door, opts?: { token?: string | null }): Clients;
  transport(door: AnyDoor, opts?: { token?: string | null }): Transport;
  close(): Promise<void>;
}

/**
 * A real server on free ports over a fresh MariaDB database, with migrations
 * applied at start (as in production), authenticated by a random bootstrap key.
 */
export async function startTestServer(
  env: Record<string, string> = {},
  opts: {
    reaper?: Partial<ReaperOptions>;
    relay?: Partial<RelayOptions>;
    /** Collects the server's log lines (JSON, level info and up) instead of discarding them. */
    logLines?: string[];
    /** Appended to the test database's DATABASE_URL (MariaDB only), e.g. `?socket=…`. */
    databaseUrlParams?: string;
  } = {},
): Promise<TestServer> {
  const db = await createTestDatabase();
  const apiKey = `test_${randomBytes(16).toString("hex")}`;
  const config = loadConfig({
    ...storeEnv(db, opts.databaseUrlParams),
    PORT: "0",
    GRPC_PORT: "0",
    AUTH_BOOTSTRAP_KEY: apiKey,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...env,
  });
  const server = await startServer(config, {
    log: opts.logLines
      ? pino({ level: "info" }, { write: (line: string) => opts.logLines!.push(line) })
      : pino({ level: config.logLevel }),
    reaper: opts.reaper,
    relay: opts.relay,
  });
  const grpcAddress = `127.0.0.1:${server.grpcPort}`;
  const httpUrl = `http://127.0.0.1:${server.httpPort}`;

  const transport = (door: AnyDoor, opts: { token?: string | null } = {}): Transport => {
    const token = opts.token === undefined ? apiKey : opts.token;
    const auth: Interceptor = (next) => (req) => {
      if (token !== null) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };
    const interceptors = [auth];
    switch (door) {
      case "grpc":
        return createGrpcTransport({ baseUrl: `http://${grpcAddress}`, interceptors });
      case "grpc-on-port":
        return createGrpcTransport({ baseUrl: httpUrl, interceptors });
      case "connect":
        return createConnectTransport({ baseUrl: httpUrl, httpVersion: "1.1", interceptors });
      case "connect-proto":
        return createConnectTransport({
          baseUrl: httpUrl,
          httpVersion: "1.1",
          useBinaryFormat: true,
          interceptors,
        });
      case "grpc-web":
        return createGrpcWebTransport({ baseUrl: httpUrl, httpVersion: "1.1", interceptors });
    }
  };
  const clients = (door: Door, opts?: { token?: string | null }): Clients => {
    const t = transport(door, opts);
    return { groups: createClient(GroupsService, t), orgs: createClient(OrganizationsService, t) };
  };

  return {
    server,
    db,
    apiKey,
    grpcAddress,
    httpUrl,
    clients,
    transport,
    async close() {
      await server.close();
      await db.drop();
    },
  };
}
