import { mkdirSync } from "node:fs";
import path from "node:path";
import { DataSource } from "typeorm";
import type { Config } from "../config.js";
import { PREPARED_STATEMENTS_PER_CONNECTION } from "./dialect.js";
import { ENTITIES } from "./entities.js";
import { mysqlDriver } from "./mysql-session.js";
import { Initial1764129600000 } from "./migrations/mysql-1764129600000-initial.js";
import { ApiKeys1764300000000 } from "./migrations/mysql-1764300000000-api-keys.js";
import { MemberCountShards1764400000000 } from "./migrations/mysql-1764400000000-member-count-shards.js";
import { RelayWatermark1764500000000 } from "./migrations/mysql-1764500000000-relay-watermark.js";
import { LinksWithoutOrganization1764600000000 } from "./migrations/mysql-1764600000000-links-without-organization.js";
import { SqliteInitial1764129600000 } from "./migrations/sqlite-1764129600000-initial.js";
import { SqliteApiKeys1764300000000 } from "./migrations/sqlite-1764300000000-api-keys.js";
import { SqliteMemberCountShards1764400000000 } from "./migrations/sqlite-1764400000000-member-count-shards.js";
import { SqliteRelayWatermark1764500000000 } from "./migrations/sqlite-1764500000000-relay-watermark.js";
import { SqliteLinksWithoutOrganization1764600000000 } from "./migrations/sqlite-1764600000000-links-without-organization.js";

export const MYSQL_MIGRATIONS = [
  Initial1764129600000,
  ApiKeys1764300000000,
  MemberCountShards1764400000000,
  RelayWatermark1764500000000,
  LinksWithoutOrganization1764600000000,
];
export const SQLITE_MIGRATIONS = [
  SqliteInitial1764129600000,
  SqliteApiKeys1764300000000,
  SqliteMemberCountShards1764400000000,
  SqliteRelayWatermark1764500000000,
  SqliteLinksWithoutOrganization1764600000000,
];

/** Builds (does not connect) the TypeORM data source for the configured database. */
export function createDataSource(database: Config["database"]): DataSource {
  if (database.kind === "sqlite") {
    if (database.path !== ":memory:")
      mkdirSync(path.dirname(path.resolve(database.path)), { recursive: true });
    return new DataSource({
      type: "better-sqlite3",
      database: database.path,
      entities: ENTITIES,
      migrations: SQLITE_MIGRATIONS,
      migrationsTableName: "schema_migrations",
      migrationsTransactionMode: "each",
      synchronize: false,
      // Readers do not block the writer, and a crash loses no committed write.
      enableWAL: true,
      prepareDatabase: (db: { pragma(s: string): unknown }) => {
        db.pragma("synchronous = FULL");
        db.pragma("busy_timeout = 5000");
      },
    });
  }
  return new DataSource({
    type: "mysql",
    driver: mysqlDriver,
    connectorPackage: "mysql2",
    url: database.url,
    socketPath: database.socketPath,
    entities: ENTITIES,
    migrations: MYSQL_MIGRATIONS,
    migrationsTableName: "schema_migrations",
    migrationsTransactionMode: "each",
    synchronize: false,
    charset: "utf8mb4",
    // One round trip for a change's writes (store/dialect.ts executeAll). Every
    // statement is parameterised, so this adds no injection surface.
    multipleStatements: true,
    // Dates are written and read as UTC whatever the server's time zone.
    timezone: "Z",
    poolSize: database.poolSize,
    extra: {
      // mysql2 queues without bound by default: bound it so an overloaded
      // database turns into fast UNAVAILABLE answers, not a growing backlog.
      queueLimit: database.poolQueueLimit,
      waitForConnections: true,
      enableKeepAlive: true,
      connectTimeout: 5_000,
      maxPreparedStatements: PREPARED_STATEMENTS_PER_CONNECTION,
    },
  });
}

/**
 * Applies pending migrations. On MySQL several replicas may start at once, so
 * a named lock makes them take turns: the first migrates, the others then
 * find nothing to do (instead of failing on "table already exists").
 */
export async function migrate(dataSource: DataSource): Promise<string[]> {
  if (dataSource.options.type !== "mysql") {
    return (await dataSource.runMigrations({ transaction: "each" })).map((m) => m.name);
  }
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    const [{ db }] = (await runner.query("SELECT DATABASE() AS db")) as { db: string }[];
    const lock = `groups_migrate:${db}`.slice(0, 64);
    const [{ got }] = (await runner.query("SELECT GET_LOCK(?, 120) AS got", [lock])) as {
      got: number | null;
    }[];
    if (got !== 1) throw new Error("timed out waiting for another replica's migrations");
    try {
      return (await dataSource.runMigrations({ transaction: "each" })).map((m) => m.name);
    } finally {
      await runner.query("DO RELEASE_LOCK(?)", [lock]);
    }
  } finally {
    await runner.release();
  }
}
