import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/src/config.js";
import { createDataSource, MYSQL_MIGRATIONS } from "../../server/src/store/data-source.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/** The MySQL migrations apply on an empty database, undo completely, and apply again. */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

async function tables(): Promise<string[]> {
  const [rows] = await db.sql.query(
    "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
    [db.name],
  );
  return (rows as { t: string }[]).map((r) => r.t).sort();
}

describe("migrations", () => {
  it("go up, down and up again", async () => {
    const ds = createDataSource(loadConfig({ DATABASE_URL: db.url }).database);
    await ds.initialize();
    try {
      const applied = await ds.runMigrations({ transaction: "each" });
      expect(applied.map((m) => m.name)).toEqual(MYSQL_MIGRATIONS.map((M) => new M().name));
      expect(await tables()).toEqual([
        "deletion_jobs",
        "events",
        "group_memberships",
        "idempotency_keys",
        "org_groups",
        "organization_memberships",
        "organizations",
        "schema_migrations",
      ]);
      expect(await ds.runMigrations()).toEqual([]);
      const [engines] = await db.sql.query(
        "SELECT DISTINCT engine, table_collation FROM information_schema.tables WHERE table_schema = ? AND table_name <> 'schema_migrations'",
        [db.name],
      );
      expect(engines).toEqual([{ engine: "InnoDB", table_collation: "utf8mb4_bin" }]);

      for (let i = 0; i < MYSQL_MIGRATIONS.length; i++) await ds.undoLastMigration();
      expect(await tables()).toEqual(["schema_migrations"]);

      expect((await ds.runMigrations()).length).toBe(MYSQL_MIGRATIONS.length);
      expect(await tables()).toContain("events");
    } finally {
      await ds.destroy();
    }
  });
});
