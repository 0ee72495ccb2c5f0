import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataSource } from "typeorm";
import { DomainError } from "../../server/src/domain/errors.js";
import { Database } from "../../server/src/store/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/** Real deadlocks on the real MariaDB: the whole transaction is retried. */
let testDb: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await testDb.sql.query("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB");
  await testDb.sql.query("INSERT INTO t VALUES (1, 0), (2, 0)");
  dataSource = new DataSource({ type: "mysql", url: testDb.url, poolSize: 4 });
  await dataSource.initialize();
});

afterAll(async () => {
  await dataSource?.destroy();
  await testDb?.drop();
});

/** Two transactions that each lock one row, wait for the other, then lock the other row: a deadlock. */
async function crossLock(
  db: Database,
  first: number,
  second: number,
  barrier: { arrived: number },
  attempts: number[],
) {
  return db.transaction(async (tx) => {
    attempts.push(first);
    await tx.query("UPDATE t SET v = v + 1 WHERE id = ?", [first]);
    barrier.arrived++;
    while (barrier.arrived < 2) await new Promise((r) => setTimeout(r, 5));
    await tx.query("UPDATE t SET v = v + 1 WHERE id = ?", [second]);
  });
}

describe("Database.transaction", () => {
  it("retries a deadlocked transaction until it commits, applying it exactly once", async () => {
    const db = new Database(dataSource);
    const barrier = { arrived: 0 };
    const attempts: number[] = [];
    await Promise.all([
      crossLock(db, 1, 2, barrier, attempts),
      crossLock(db, 2, 1, barrier, attempts),
    ]);
    // One of the two was chosen as the deadlock victim and ran again.
    expect(attempts.length).toBeGreaterThan(2);
    const [rows] = await testDb.sql.query("SELECT id, v FROM t ORDER BY id");
    expect(rows).toEqual([
      { id: 1, v: 2 },
      { id: 2, v: 2 },
    ]);
  });

  it("turns a conflict that outlasts the retries into ABORTED with nothing applied", async () => {
    const db = new Database(dataSource, { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 });
    let calls = 0;
    const err = await db
      .transaction(async (tx) => {
        calls++;
        await tx.query("UPDATE t SET v = v + 100 WHERE id = 1");
        throw Object.assign(new Error("Deadlock found"), { errno: 1213 });
      })
      .catch((e: unknown) => e);
    expect(calls).toBe(2);
    expect(err).toBeInstanceOf(DomainError);
    expect(err).toMatchObject({ kind: "aborted", reason: "TRANSACTION_CONFLICT" });
    const [rows] = await testDb.sql.query("SELECT v FROM t WHERE id = 1");
    expect(rows).toEqual([{ v: 2 }]);
  });
});
