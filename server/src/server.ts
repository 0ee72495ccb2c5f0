import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { ApiKeys } from "./auth/api-keys.js";
import { Authenticator } from "./auth/authenticator.js";
import { Authorizer } from "./auth/authorization.js";
import { JwtVerifier } from "./auth/jwt.js";
import { RateLimiter } from "./auth/rate-limit.js";
import { ensureEmbeddedKey } from "./auth/embedded-key.js";
import type { Config } from "./config.js";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import { EventFeed } from "./domain/event-feed.js";
import { NatsPublisher } from "./events/nats-publisher.js";
import { DEFAULT_RELAY_OPTIONS, Relay, type RelayOptions } from "./events/relay.js";
import { connectAdapter } from "./rpc/connect-adapter.js";
import { answerGrpcFrameworkErrorsWithDetails } from "./rpc/grpc-request-faults.js";
import { eventsHandlers } from "./rpc/events-service.js";
import { Groups } from "./domain/groups.js";
import { Memberships } from "./domain/memberships.js";
import { Organizations } from "./domain/organizations.js";
import { DEFAULT_REAPER_OPTIONS, Reaper, type ReaperOptions } from "./domain/reaper.js";
import { Health } from "../../clients/src/gen/grpc/health/v1/health_pb.js";
import { createDualProtocolServer } from "./ops/dual-protocol.js";
import { HealthStatus, healthHandlers } from "./ops/health.js";
import { withCors } from "./ops/cors.js";
import { opsEndpoints } from "./ops/http-endpoints.js";
import { addReflection } from "./ops/reflection.js";
import { Metrics, mysqlPoolStats } from "./ops/metrics.js";
import { backlog } from "./store/events.js";
import { useStacklessAbortErrors } from "./ops/abort-errors.js";
import { createLogger } from "./ops/logger.js";
import { clampGrpcJsDeadlines, withClampedDeadlines } from "./rpc/deadline-headers.js";
import { connectRoutes, type ServiceBinding } from "./rpc/connect-door.js";
import { addGrpcServices } from "./rpc/grpc-door.js";
import { groupsHandlers } from "./rpc/groups-service.js";
import { organizationsHandlers } from "./rpc/organizations-service.js";
import { CallPipeline } from "./rpc/pipeline.js";
import { createDataSource, migrate } from "./store/data-source.js";
import { Database } from "./store/database.js";

/** Largest request or response message either front door accepts. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export interface RunningServer {
  grpcPort: number;
  httpPort: number;
  database: Database;
  apiKeys: ApiKeys;
  reaper: Reaper;
  relay: Relay;
  health: HealthStatus;
  metrics: Metrics;
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
  useStacklessAbortErrors();
  const log = opts.log ?? createLogger(config.logLevel);
  const dataSource = createDataSource(config.database);
  let auth = config.auth;
  if (auth.disabled) {
    log.warn("AUTH_DISABLED=1: every caller is trusted; never do this in production");
  } else if (!auth.bootstrapKey && !auth.jwt && config.database.kind === "sqlite") {
    // The embedded default with no authentication configured: make the
    // newcomer a key so the first call just works.
    const print = (line: string) => console.log(line);
    auth = { ...auth, bootstrapKey: ensureEmbeddedKey(config.database.path, print) };
  } else if (!auth.bootstrapKey) {
    log.info("no AUTH_BOOTSTRAP_KEY: callers need API keys (npm run keys -- create) or JWTs");
  }
  await dataSource.initialize();
  if (config.migrateOnStart) await migrate(dataSource);
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
  const metrics = new Metrics({
    pool: () => mysqlPoolStats(dataSource.driver),
    backlog: async () => (publisher ? backlog(database.reader) : { count: 0, oldest: null }),
  });
  const health = new HealthStatus();
  const relay = new Relay(database, publisher, log.child({ component: "relay" }), {
    ...DEFAULT_RELAY_OPTIONS,
    onPublished: (e) => {
      metrics.eventsPublished.inc();
      metrics.relayLagSeconds.observe((Date.now() - e.createdAt.getTime()) / 1000);
    },
    pollIntervalMs: config.events.relayPollIntervalMs,
    batchSize: config.events.relayBatchSize,
    retentionMs: config.events.retentionMs,
    fault: config.events.fault,
    ...opts.relay,
  });

  const bindings: ServiceBinding[] = [
    {
      service: GroupsService,
      handlers: groupsHandlers(
        new Groups(database, reaper, {
          onSharedChange: (calls, seconds) => {
            metrics.memberChangesPerTransaction.observe(calls);
            metrics.memberChangeTransactionSeconds.observe(seconds);
          },
          onSharedRead: (method, calls, seconds) => {
            metrics.readsPerStatement.observe({ method }, calls);
            metrics.readStatementSeconds.observe({ method }, seconds);
          },
        }),
      ) as never,
    },
    {
      service: OrganizationsService,
      handlers: organizationsHandlers(
        new Organizations(database, reaper),
        new Memberships(database),
      ) as never,
    },
    {
      service: EventsService,
      handlers: eventsHandlers(
        new EventFeed(database, relay, config.events.relayPollIntervalMs),
      ) as never,
    },
    { service: Health, handlers: healthHandlers(health) as never },
  ];
  const apiKeys = new ApiKeys(database, auth.apiKeyCacheMs);
  const pipeline = new CallPipeline(
    log,
    {
      authenticator: new Authenticator({
        disabled: auth.disabled,
        bootstrapKey: auth.bootstrapKey,
        apiKeys,
        jwt: auth.jwt ? new JwtVerifier(auth.jwt) : undefined,
      }),
      authorizer: new Authorizer(
        bindings.map((b) => b.service).filter((s) => s.typeName !== Health.typeName),
      ),
      // One caller when authentication is off: there is nobody to tell apart.
      rateLimiter: new RateLimiter(
        auth.disabled ? 0 : config.limits.ratePerSecond,
        config.limits.rateBurst,
      ),
    },
    {
      publicServices: [Health.typeName],
      metrics,
      deadlines: { defaultMs: config.limits.deadlineDefaultMs, maxMs: config.limits.deadlineMaxMs },
    },
  );

  const adapter = connectAdapter({
    log,
    routes: connectRoutes(bindings, pipeline),
    // Plain form posts cannot pass for Connect calls (CSRF): the header is required.
    requireConnectProtocolHeader: true,
    // As the proto3 JSON mapping says by default: a misspelled field or an
    // enum name the service does not know is INVALID_ARGUMENT, not silently
    // dropped (a membership created "active" when "INACTIVE" was asked for).
    jsonOptions: { ignoreUnknownFields: false },
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    fallback: opsEndpoints({
      health,
      metrics,
      pingDatabase: () => dataSource.query("SELECT 1"),
      natsState: () =>
        !publisher ? "not configured" : publisher.connected ? "connected" : "disconnected",
    }),
  });
  const http = createDualProtocolServer(
    withClampedDeadlines(withCors(config.corsAllowedOrigins, adapter)) as never,
  );
  await new Promise<void>((resolve, reject) => {
    http.server.once("error", reject).listen(config.port, config.host, () => resolve());
  });

  answerGrpcFrameworkErrorsWithDetails();
  clampGrpcJsDeadlines();
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    // No channelz service is exposed, so its per-call trackers would count for nobody.
    "grpc.enable_channelz": 0,
  });
  addGrpcServices(grpcServer, bindings, pipeline);
  addReflection(
    grpcServer,
    bindings.map((b) => b.service),
  );
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(
      `${config.host}:${config.grpcPort}`,
      grpc.ServerCredentials.createInsecure(),
      (err, port) => (err ? reject(err) : resolve(port)),
    ),
  );
  reaper.start();
  publisher?.start();
  relay.start();

  const httpPort = (http.server.address() as AddressInfo).port;
  log.info({ httpPort, grpcPort, database: config.database.kind }, "groups service listening");

  return {
    grpcPort,
    httpPort,
    database,
    apiKeys,
    reaper,
    relay,
    health,
    metrics,
    log,
    async close(graceMs = 10_000) {
      // Stop accepting, refuse new calls, end streams, let in-flight calls finish
      // (bounded), then cut what is left.
      health.setNotServing();
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
