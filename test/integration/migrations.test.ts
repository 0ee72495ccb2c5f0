import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/src/config.js";
import {
  createDataSource,
  MYSQL_MIGRATIONS,
  SQLITE_MIGRATIONS,
} from "../../server/src/store/data-source.js";
import { createTestDatabase, TEST_DATABASE, type TestDatabase } from "../support/database.js";

/** The migrations apply on an empty database, undo completely, and apply again (MariaDB and SQLite). */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

async function tables(): Promise<string[]> {
  const [rows] =
    TEST_DATABASE === "sqlite"
      ? await db.sql.query(
          "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
      : await db.sql.query(
          "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ?",
          [db.name],
        );
  return (rows as { t: string }[]).map((r) => r.t).sort();
}

describe("migrations", () => {
  it("go up, down and up again", async () => {
    const env = TEST_DATABASE === "sqlite" ? { SQLITE_PATH: db.url } : { DATABASE_URL: db.url };
    const ds = createDataSource(loadConfig(env).database);
    const migrations = TEST_DATABASE === "sqlite" ? SQLITE_MIGRATIONS : MYSQL_MIGRATIONS;
    await ds.initialize();
    try {
      const applied = await ds.runMigrations({ transaction: "each" });
      expect(applied.map((m) => m.name)).toEqual(migrations.map((M) => new M().name));
      expect(await tables()).toEqual([
        "api_keys",
        "deletion_jobs",
        "events",
        "group_member_counts",
        "group_memberships",
        "idempotency_keys",
        "org_groups",
        "organization_memberships",
        "organizations",
        "schema_migrations",
      ]);
      expect(await ds.runMigrations()).toEqual([]);
      if (TEST_DATABASE === "mysql") {
        const [engines] = await db.sql.query(
          "SELECT DISTINCT engine, table_collation FROM information_schema.tables WHERE table_schema = ? AND table_name <> 'schema_migrations'",
          [db.name],
        );
        expect(engines).toEqual([{ engine: "InnoDB", table_collation: "utf8mb4_bin" }]);
      }

      for (let i = 0; i < migrations.length; i++) await ds.undoLastMigration();
      expect(await tables()).toEqual(["schema_migrations"]);

      expect((await ds.runMigrations()).length).toBe(migrations.length);
      expect(await tables()).toContain("events");
    } finally {
      await ds.destroy();
    }
  });
});
