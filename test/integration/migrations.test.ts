import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/src/config.js";
import {
  createDataSource,
  MYSQL_MIGRATIONS,
  SQLITE_MIGRATIONS,
} from "../../server/src/store/data-source.js";
import type { DataSource } from "typeorm";
import {
  createTestDatabase,
  storeEnv,
  TEST_DATABASE,
  type TestDatabase,
} from "../support/database.js";

/** The migrations apply on an empty database, undo completely, and apply again (MariaDB and SQLite). */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

/** A data source on the test database (nothing applied by it) for the duration of `work`. */
async function withDataSource(work: (ds: DataSource) => Promise<void>): Promise<void> {
  const ds = createDataSource(loadConfig(storeEnv(db)).database);
  await ds.initialize();
  try {
    await work(ds);
  } finally {
    await ds.destroy();
  }
}

/** Undoes the latest migrations until the one whose name starts with `name` (Sqlite… included) is undone. */
async function undoThrough(ds: DataSource, name: string): Promise<void> {
  for (;;) {
    const [last] = (await ds.query(
      "SELECT name FROM schema_migrations ORDER BY id DESC LIMIT 1",
    )) as { name: string }[];
    await ds.undoLastMigration({ transaction: "each" });
    if (last.name.replace(/^Sqlite/, "").startsWith(name)) return;
  }
}

/** group_memberships' columns and index names, on either store. */
async function linkSchema(ds: DataSource): Promise<{ columns: string[]; indexes: string[] }> {
  if (TEST_DATABASE === "sqlite") {
    const columns = (await ds.query("PRAGMA table_info(group_memberships)")) as { name: string }[];
    const indexes = (await ds.query(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'group_memberships' AND sql IS NOT NULL",
    )) as { name: string }[];
    return { columns: columns.map((c) => c.name), indexes: indexes.map((i) => i.name).sort() };
  }
  const columns = (await ds.query(
    "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = ? AND table_name = 'group_memberships' ORDER BY ordinal_position",
    [db.name],
  )) as { name: string }[];
  const indexes = (await ds.query(
    "SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = ? AND table_name = 'group_memberships' AND index_name <> 'PRIMARY' AND index_name NOT LIKE 'fk_%'",
    [db.name],
  )) as { name: string }[];
  return { columns: columns.map((c) => c.name), indexes: indexes.map((i) => i.name).sort() };
}

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
  it("go up, down and up again", () =>
    withDataSource(async (ds) => {
      const migrations = TEST_DATABASE === "sqlite" ? SQLITE_MIGRATIONS : MYSQL_MIGRATIONS;
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
    }));

  it("turn the relay's per-event marks into a watermark before the first unpublished event, and back", () =>
    withDataSource(async (ds) => {
      await ds.runMigrations({ transaction: "each" });
      await undoThrough(ds, "RelayWatermark"); // events.published_at is back
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

      await undoThrough(ds, "RelayWatermark");
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
    }));

  it("drop group_memberships' organization id, and give each link its group's back", () =>
    withDataSource(async (ds) => {
      await ds.runMigrations({ transaction: "each" });
      const at = "2026-01-01 00:00:00.000";
      for (const org of ["org_a", "org_b"]) {
        await ds.query(
          "INSERT INTO organizations (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
          [org, org, at, at],
        );
        await ds.query(
          "INSERT INTO org_groups (id, organization_id, name, member_count, version, created_at, updated_at) VALUES (?, ?, 'g', 1, 1, ?, ?)",
          [`grp_${org}`, org, at, at],
        );
        await ds.query(
          "INSERT INTO organization_memberships (id, organization_id, user_id, status, created_at, updated_at) VALUES (?, ?, 'u', 'active', ?, ?)",
          [`om_${org}`, org, at, at],
        );
        await ds.query(
          "INSERT INTO group_memberships (group_id, organization_membership_id, created_at) VALUES (?, ?, ?)",
          [`grp_${org}`, `om_${org}`, at],
        );
      }
      const without = {
        columns: ["group_id", "organization_membership_id", "created_at"],
        indexes: ["ix_group_memberships_member"],
      };
      expect(await linkSchema(ds)).toEqual(without);

      await undoThrough(ds, "LinksWithoutOrganization");
      expect(await linkSchema(ds)).toEqual({
        columns:
          TEST_DATABASE === "sqlite" // SQLite appends an added column
            ? ["group_id", "organization_membership_id", "created_at", "organization_id"]
            : ["group_id", "organization_membership_id", "organization_id", "created_at"],
        indexes: ["ix_group_memberships_member", "ix_group_memberships_org"],
      });
      expect(
        await ds.query("SELECT group_id, organization_id FROM group_memberships ORDER BY group_id"),
      ).toEqual([
        { group_id: "grp_org_a", organization_id: "org_a" },
        { group_id: "grp_org_b", organization_id: "org_b" },
      ]);

      await ds.runMigrations({ transaction: "each" });
      expect(await linkSchema(ds)).toEqual(without);
      expect(Number((await ds.query("SELECT COUNT(*) AS n FROM group_memberships"))[0].n)).toBe(2);
    }));
});
