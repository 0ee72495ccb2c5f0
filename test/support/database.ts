import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Sqlite from "better-sqlite3";
import mysql from "mysql2/promise";

/** The MariaDB/MySQL server the tests use (root on this machine by default). */
export const TEST_MYSQL_URL = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";

export interface TestDatabase {
  name: string;
  url: string;
  /** A plain mysql2 connection to it, for checking what the service stored. */
  sql: mysql.Connection;
  drop(): Promise<void>;
}

/** Which store the suite runs on: MariaDB (default) or the embedded SQLite (TEST_DATABASE=sqlite). */
export const TEST_DATABASE = process.env.TEST_DATABASE === "sqlite" ? "sqlite" : "mysql";

/**
 * The service's settings naming `db` as its store (`params` appended to a
 * MariaDB DATABASE_URL, e.g. `?socket=…`).
 */
export function storeEnv(db: TestDatabase, params = ""): Record<string, string> {
  return TEST_DATABASE === "sqlite" ? { SQLITE_PATH: db.url } : { DATABASE_URL: db.url + params };
}

/**
 * A fresh, uniquely named database, dropped by `drop()`: every test file owns
 * its own. With TEST_DATABASE=sqlite it is a SQLite file in a temporary
 * directory (`url` is then its path, for SQLITE_PATH).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (TEST_DATABASE === "sqlite") return createSqliteDatabase();
  const name = `groups_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  const admin = await mysql.createConnection(TEST_MYSQL_URL);
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  const url = `${TEST_MYSQL_URL.replace(/\/$/, "")}/${name}`;
  const sql = await mysql.createConnection({ uri: url, timezone: "Z" });
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end().catch(() => undefined);
      const conn = await mysql.createConnection(TEST_MYSQL_URL);
      await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await conn.end();
    },
  };
}

/**
 * The SQLite twin of the above. `sql` answers `query(sql, params)` like
 * mysql2 (`[rows]`), so suites read stored rows the same way on both stores.
 */
function createSqliteDatabase(): TestDatabase {
  const dir = mkdtempSync(path.join(tmpdir(), "groups-test-"));
  const file = path.join(dir, "groups.sqlite");
  let conn: Sqlite.Database | undefined;
  const open = () => (conn ??= new Sqlite(file, { timeout: 5_000 }));
  const sql = {
    async query(text: string, params: unknown[] = []) {
      // mysql2 style: a "?" bound to an array becomes a list.
      let next = 0;
      const flat: unknown[] = [];
      const expanded = text.replace(/\?/g, () => {
        const p = params[next++];
        if (!Array.isArray(p)) {
          flat.push(bind(p));
          return "?";
        }
        flat.push(...p.map(bind));
        return p.map(() => "?").join(", ");
      });
      const stmt = open().prepare(expanded);
      return stmt.reader ? [stmt.all(...flat)] : [stmt.run(...flat)];
    },
    async end() {
      conn?.close();
      conn = undefined;
    },
  };
  return {
    name: path.basename(dir),
    url: file,
    sql: sql as unknown as mysql.Connection,
    async drop() {
      await sql.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const bind = (p: unknown) =>
  p instanceof Date
    ? p.toISOString().replace("T", " ").replace("Z", "")
    : typeof p === "boolean"
      ? Number(p)
      : p;

/**
 * How many of the service's events are not in the stream yet: unsequenced, or
 * past the relay's published-through watermark (moved after the acks).
 */
export async function unpublishedCount(db: TestDatabase): Promise<number> {
  const [rows] = await db.sql.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM events CROSS JOIN relay_progress p
     WHERE sequence IS NULL OR sequence > p.published_through`,
  );
  return Number(rows[0].n);
}
