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
        "relay_progress",
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

  it("turn the relay's per-event marks into a watermark before the first unpublished event, and back", async () => {
    const env = TEST_DATABASE === "sqlite" ? { SQLITE_PATH: db.url } : { DATABASE_URL: db.url };
    const ds = createDataSource(loadConfig(env).database);
    await ds.initialize();
    try {
      await ds.runMigrations({ transaction: "each" });
      await ds.undoLastMigration(); // events.published_at is back
      // Sequences 1 and 2 published, 3 not, 4 published past the gap (an ack
      // that came back after an earlier one failed), one event not sequenced.
      const marks: [number | null, boolean][] = [
        [1, true],
        [2, true],
        [3, false],
        [4, true],
        [null, false],
      ];
      for (const [i, [sequence, published]] of marks.entries()) {
        const at = `2026-01-01 00:00:0${i}.000`; // DATETIME(3) text on both stores
        await ds.query(
          "INSERT INTO events (sequence, id, type, organization_id, group_id, cause, payload, " +
            "created_at, published_at) VALUES (?, ?, 'group.created', 'org_1', 'grp_1', 'api', '{}', ?, ?)",
          [sequence, `evt_${i}`, at, published ? at : null],
        );
      }

      await ds.runMigrations({ transaction: "each" });
      const [progress] = (await ds.query("SELECT id, published_through FROM relay_progress")) as {
        id: number;
        published_through: number | string;
      }[];
      // Through 2: sequence 4 is published again, and JetStream drops the duplicate.
      expect({ id: Number(progress.id), through: Number(progress.published_through) }).toEqual({
        id: 1,
        through: 2,
      });

      await ds.undoLastMigration();
      const rows = (await ds.query(
        "SELECT id, published_at IS NOT NULL AS published FROM events ORDER BY id",
      )) as { id: string; published: number | string }[];
      expect(rows.map((r) => [r.id, Number(r.published) === 1])).toEqual([
        ["evt_0", true],
        ["evt_1", true],
        ["evt_2", false],
        ["evt_3", false],
        ["evt_4", false],
      ]);
      await ds.runMigrations({ transaction: "each" });
    } finally {
      await ds.destroy();
    }
  });
});
