import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/src/config.js";

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      grpcPort: 50051,
      database: { kind: "sqlite", path: "./data/groups.sqlite" },
      migrateOnStart: true,
      nats: { url: undefined, stream: "GROUPS_EVENTS", subjectPrefix: "groups.v1" },
      auth: { disabled: false },
      corsAllowedOrigins: [],
      logLevel: "info",
      events: { relayBatchSize: 2000, relayPollIntervalMs: 250 },
    });
  });

  it("reads a MySQL URL and the other variables", () => {
    const c = loadConfig({
      DATABASE_URL: "mysql://u:p@db:3306/groups",
      PORT: "9000",
      GRPC_PORT: "0",
      MIGRATE_ON_START: "0",
      CORS_ALLOWED_ORIGINS: "https://a.example, https://b.example",
      AUTH_DISABLED: "1",
      NATS_URL: "nats://127.0.0.1:4222",
      RELAY_BATCH_SIZE: "300",
    });
    expect(c.database).toMatchObject({ kind: "mysql", url: "mysql://u:p@db:3306/groups" });
    expect(c.port).toBe(9000);
    expect(c.grpcPort).toBe(0);
    expect(c.migrateOnStart).toBe(false);
    expect(c.corsAllowedOrigins).toEqual(["https://a.example", "https://b.example"]);
    expect(c.auth.disabled).toBe(true);
    expect(c.nats.url).toBe("nats://127.0.0.1:4222");
    expect(c.events.relayBatchSize).toBe(300);
  });

  it("reads a Unix socket from DATABASE_URL's socket parameter, and insists on an absolute path", () => {
    const c = loadConfig({
      DATABASE_URL: "mariadb://u:p@localhost/groups?socket=%2Frun%2Fmysqld%2Fmysqld.sock",
    });
    expect(c.database).toMatchObject({ kind: "mysql", socketPath: "/run/mysqld/mysqld.sock" });
    expect(loadConfig({ DATABASE_URL: "mysql://u@db/groups" }).database).toMatchObject({
      socketPath: undefined,
    });
    expect(() =>
      loadConfig({ DATABASE_URL: "mysql://u@localhost/groups?socket=mysqld.sock" }),
    ).toThrow(/DATABASE_URL: its socket parameter must be an absolute path/);
  });

  it("reports every bad variable at once, by name", () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: "70000",
        DATABASE_URL: "postgres://x",
        AUTH_DISABLED: "maybe",
        LOG_LEVEL: "loud",
        NATS_SUBJECT_PREFIX: "groups.>",
        JWT_JWKS_URL: "https://idp.example/jwks",
        RELAY_BATCH_SIZE: "0",
        // Over the cap it leaves at its default (60 s): a cross-variable rule, reported too.
        DEADLINE_DEFAULT_MS: "70000",
        AUTH_BOOTSTRAP_KEY: "change-me",
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const named = (error as ConfigError).problems.map((p) => p.split(":")[0]);
    expect(named.sort()).toEqual(
      [
        "AUTH_BOOTSTRAP_KEY",
        "AUTH_DISABLED",
        "DATABASE_URL",
        "DEADLINE_DEFAULT_MS",
        // The two that must come with JWT_JWKS_URL, by their own names.
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "LOG_LEVEL",
        "NATS_SUBJECT_PREFIX",
        "PORT",
        "RELAY_BATCH_SIZE",
      ].sort(),
    );
  });

  it("refuses values that would start a service that cannot work", () => {
    const problem = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as ConfigError).problems.join("; ");
      }
      return "";
    };
    // A pool of one: the relay's lease (or the migration lock) takes it and every call waits.
    expect(problem({ DATABASE_POOL_SIZE: "1" })).toMatch(/^DATABASE_POOL_SIZE: must be at least 2/);
    expect(
      loadConfig({ DATABASE_URL: "mysql://u@db/groups", DATABASE_POOL_SIZE: "2" }).database,
    ).toMatchObject({ poolSize: 2 });
    // mysql2 reads a queue limit of 0 as unbounded, the opposite of what it says.
    expect(problem({ DATABASE_POOL_QUEUE_LIMIT: "0" })).toMatch(/^DATABASE_POOL_QUEUE_LIMIT:/);
    // A NATS address nats.js would never reach is caught at start, not at the first publish.
    for (const bad of [
      "nats//127.0.0.1:4222",
      "http://nats:4222",
      "nats://a:4222,",
      "nats://a b",
    ]) {
      expect(problem({ NATS_URL: bad }), bad).toMatch(/^NATS_URL: must be nats:\/\/host:port/);
    }
    for (const good of [
      "nats://127.0.0.1:4222",
      "tls://nats.internal:4443",
      "nats://user:secret@nats-1:4222, nats://nats-2:4222",
      "localhost:4222",
      "nats://[::1]:4222",
    ]) {
      expect(loadConfig({ NATS_URL: good }).nats.url, good).toBe(good);
    }
  });

  it("takes a variable set to nothing as unset: its default, never port 0", () => {
    const c = loadConfig({ PORT: "", GRPC_PORT: " ", RATE_LIMIT_PER_SECOND: "", HOST: "" });
    expect(c).toMatchObject({ port: 8080, grpcPort: 50051, host: "127.0.0.1" });
    expect(c.limits.ratePerSecond).toBe(1000);
  });
});
