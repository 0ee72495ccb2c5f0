import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { Authenticator } from "./auth/authenticator.js";
import type { Config } from "./config.js";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import { EventFeed } from "./domain/event-feed.js";
import { NatsPublisher } from "./events/nats-publisher.js";
import { DEFAULT_RELAY_OPTIONS, Relay, type RelayOptions } from "./events/relay.js";
import { eventsHandlers } from "./rpc/events-service.js";
import { Groups } from "./domain/groups.js";
import { Memberships } from "./domain/memberships.js";
import { Organizations } from "./domain/organizations.js";
import { DEFAULT_REAPER_OPTIONS, Reaper, type ReaperOptions } from "./domain/reaper.js";
import { createDualProtocolServer } from "./ops/dual-protocol.js";
import { createLogger } from "./ops/logger.js";
import { connectRoutes, type ServiceBinding } from "./rpc/connect-door.js";
import { addGrpcServices } from "./rpc/grpc-door.js";
import { groupsHandlers } from "./rpc/groups-service.js";
import { organizationsHandlers } from "./rpc/organizations-service.js";
import { CallPipeline } from "./rpc/pipeline.js";
import { createDataSource } from "./store/data-source.js";
import { Database } from "./store/database.js";

interface FallbackResponse {
  writeHead(status: number, headers: Record<string, string>): { end(body: string): void };
}

/** Largest request or response message either front door accepts. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export interface RunningServer {
  grpcPort: number;
  httpPort: number;
  database: Database;
  reaper: Reaper;
  relay: Relay;
  log: Logger;
  /** Graceful stop: drain calls (at most `graceMs`), stop the relay and reaper, close the pool. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Builds the whole service from a config and starts listening (port 0 picks
 * free ports, as the tests do). Nothing here reads the environment.
 */
export async function startServer(
  config: Config,
  opts: { log?: Logger; reaper?: Partial<ReaperOptions>; relay?: Partial<RelayOptions> } = {},
): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logLevel);
  if (config.auth.disabled)
    log.warn("AUTH_DISABLED=1: every caller is trusted; never do this in production");
  else if (!config.auth.bootstrapKey) {
    throw new Error(
      "no credentials configured: set AUTH_BOOTSTRAP_KEY (or AUTH_DISABLED=1 for a trusted network)",
    );
  }

  const dataSource = createDataSource(config.database);
  await dataSource.initialize();
  if (config.migrateOnStart) await dataSource.runMigrations({ transaction: "each" });
  const database = new Database(dataSource);
  const reaper = new Reaper(database, log.child({ component: "reaper" }), {
    ...DEFAULT_REAPER_OPTIONS,
    ...opts.reaper,
  });

  const publisher = config.nats.url
    ? new NatsPublisher(
        {
          url: config.nats.url,
          stream: config.nats.stream,
          subjectPrefix: config.nats.subjectPrefix,
          duplicateWindowMs: config.nats.duplicateWindowMs,
          maxAgeMs: config.events.retentionMs,
          format: config.events.payloadFormat,
        },
        log.child({ component: "nats" }),
      )
    : undefined;
  const relay = new Relay(database, publisher, log.child({ component: "relay" }), {
    ...DEFAULT_RELAY_OPTIONS,
    pollIntervalMs: config.events.relayPollIntervalMs,
    retentionMs: config.events.retentionMs,
    fault: config.events.fault,
    ...opts.relay,
  });

  const bindings: ServiceBinding[] = [
    { service: GroupsService, handlers: groupsHandlers(new Groups(database, reaper)) as never },
    {
      service: OrganizationsService,
      handlers: organizationsHandlers(
        new Organizations(database, reaper),
        new Memberships(database),
      ) as never,
    },
    { service: EventsService, handlers: eventsHandlers(new EventFeed(database, relay)) as never },
  ];
  const pipeline = new CallPipeline(log, new Authenticator(config.auth));

  const adapter = connectNodeAdapter({
    routes: connectRoutes(bindings, pipeline),
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    fallback: (req: { url?: string }, res: FallbackResponse) => {
      const path = (req.url ?? "").split("?")[0];
      if (path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (path === "/readyz") {
        dataSource
          .query("SELECT 1")
          .then(() => res.writeHead(200, { "content-type": "text/plain" }).end("ready\n"))
          .catch(() =>
            res.writeHead(503, { "content-type": "text/plain" }).end("database unreachable\n"),
          );
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      }
    },
  });
  const http = createDualProtocolServer(adapter);
  await new Promise<void>((resolve, reject) => {
    http.server.once("error", reject).listen(config.port, config.host, () => resolve());
  });

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });
  addGrpcServices(grpcServer, bindings, pipeline);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(
      `${config.host}:${config.grpcPort}`,
      grpc.ServerCredentials.createInsecure(),
      (err, port) => (err ? reject(err) : resolve(port)),
    ),
  );
  reaper.start();
  relay.start();

  const httpPort = (http.server.address() as AddressInfo).port;
  log.info({ httpPort, grpcPort, database: config.database.kind }, "groups service listening");

  return {
    grpcPort,
    httpPort,
    database,
    reaper,
    relay,
    log,
    async close(graceMs = 10_000) {
      // Stop accepting, refuse new calls, end streams, let in-flight calls finish
      // (bounded), then cut what is left.
      const httpClosed = new Promise<void>((resolve) => http.server.close(() => resolve()));
      const grpcClosed = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([pipeline.drain(), grace]);
      http.http1.closeIdleConnections();
      await Promise.race([grpcClosed, grace]);
      grpcServer.forceShutdown();
      http.destroyConnections();
      await httpClosed;
      await reaper.stop();
      await relay.stop();
      await publisher?.close();
      await dataSource.destroy();
    },
  };
}
