import { randomBytes } from "node:crypto";
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

/** A fresh, uniquely named database, dropped by `drop()`: every test file owns its own. */
export async function createTestDatabase(): Promise<TestDatabase> {
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
