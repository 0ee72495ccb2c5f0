import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataSource } from "typeorm";
import { loadConfig } from "../../server/src/config.js";
import { createDataSource } from "../../server/src/store/data-source.js";
import { Database } from "../../server/src/store/database.js";
import { select } from "../../server/src/store/dialect.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/**
 * Every MariaDB connection the service's pool opens carries the session
 * settings of store/mysql-session.ts before it serves anything: READ
 * COMMITTED (what the transactions are built on) and the index-dive limit
 * (what keeps CheckGroupMembership's IN list cheap), for reads outside a
 * transaction and for transactions alike, on every connection.
 */
let db: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, DATABASE_POOL_SIZE: "6" });
  dataSource = createDataSource(config.database);
  await dataSource.initialize();
});

afterAll(async () => {
  await dataSource?.destroy();
  await db?.drop();
});

interface Session {
  id: number;
  isolation: string;
  diveLimit: number;
}

// SLEEP keeps each connection busy, so that parallel asks need connections of their own.
const SESSION_SQL =
  "SELECT CONNECTION_ID() AS id, @@SESSION.tx_isolation AS isolation, " +
  "@@SESSION.eq_range_index_dive_limit AS diveLimit, SLEEP(0.05) AS slept";

const expectSettings = (sessions: Session[]) => {
  for (const s of sessions) {
    expect(s.isolation).toBe("READ-COMMITTED");
    expect(Number(s.diveLimit)).toBe(2);
  }
};

describe("MySQL session settings (store/mysql-session.ts)", () => {
  it("holds on every connection that serves reads outside a transaction", async () => {
    const sessions = (
      await Promise.all(
        Array.from({ length: 6 }, () => select<Session>(dataSource.manager, SESSION_SQL)),
      )
    ).flat();
    expect(new Set(sessions.map((s) => s.id)).size).toBeGreaterThan(1);
    expectSettings(sessions);
  });

  it("holds in every transaction, on every connection", async () => {
    const database = new Database(dataSource);
    const sessions = await Promise.all(
      Array.from({ length: 6 }, () =>
        database.transaction(async (tx) => (await select<Session>(tx, SESSION_SQL))[0]),
      ),
    );
    expect(new Set(sessions.map((s) => s.id)).size).toBeGreaterThan(1);
    expectSettings(sessions);
  });
});
