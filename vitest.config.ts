import { defineConfig } from "vitest/config";

/** Suites that also run against the embedded SQLite store (no MySQL-only SQL, no owned processes). */
const SQLITE_SUITES = [
  "test/integration/groups.test.ts",
  "test/integration/organizations.test.ts",
  "test/integration/pagination.test.ts",
  "test/integration/validation.test.ts",
  "test/integration/cascades.test.ts",
  "test/integration/concurrency.test.ts",
  "test/integration/events-api.test.ts",
  "test/integration/migrations.test.ts",
  "test/integration/ops.test.ts",
  "test/integration/sdk.test.ts",
  "test/interop/grpc-js.test.ts",
];

export default defineConfig({
  test: {
    // Each file owns its database, server and NATS stream, so files run in parallel safely.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "mariadb", include: ["test/**/*.test.ts"] } },
      {
        extends: true,
        test: { name: "sqlite", include: SQLITE_SUITES, env: { TEST_DATABASE: "sqlite" } },
      },
    ],
  },
});
