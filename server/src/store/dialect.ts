import type { DataSource, EntityManager, ObjectLiteral, SelectQueryBuilder } from "typeorm";
import { takeBegin } from "./round-trips.js";

/**
 * The few places where MySQL/MariaDB (production) and SQLite (the embedded
 * default) need different SQL. Everything else in the store is common.
 */
export type Dialect = "mysql" | "sqlite";

export function dialectOf(db: EntityManager | DataSource | Dialect): Dialect {
  if (typeof db === "string") return db;
  const options = "connection" in db ? db.connection.options : db.options;
  return options.type === "better-sqlite3" ? "sqlite" : "mysql";
}

/** `table alias` read through the named index (see pagination.ts for why). */
export function indexed(
  db: EntityManager | Dialect,
  table: string,
  alias: string,
  index: string,
): string {
  return dialectOf(db) === "sqlite"
    ? `${table} AS ${alias} INDEXED BY ${index}`
    : `${table} ${alias} FORCE INDEX (${index})`;
}

/** `(?, ?, …)` for a list parameter (better-sqlite3 does not expand arrays). */
export function placeholders(values: readonly unknown[]): string {
  return `(${values.map(() => "?").join(", ")})`;
}

/** Parameters as the driver binds them: SQLite stores times as UTC text of DATETIME(3) shape. */
export function bindable(db: EntityManager, params: unknown[]): unknown[] {
  if (dialectOf(db) !== "sqlite") return params;
  return params.map((p) => (p instanceof Date ? sqliteTime(p) : p));
}

const sqliteTime = (d: Date) => d.toISOString().replace("T", " ").replace("Z", "");

/** A time column read by a raw query: a Date from mysql2, UTC text from SQLite. */
export function readTime(value: Date | string): Date {
  return value instanceof Date ? value : new Date(`${value.replace(" ", "T")}Z`);
}

/** Runs a raw statement and returns the number of rows it changed. */
export async function execute(
  db: EntityManager,
  sql: string,
  params: unknown[] = [],
): Promise<number> {
  const runner = db.queryRunner ?? db.connection.createQueryRunner();
  try {
    const result = await runner.query(sql, bindable(db, params), true);
    return result.affected ?? 0;
  } finally {
    if (!db.queryRunner) await runner.release();
  }
}

/** One SQL statement with its parameters. */
export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * Runs statements in order and returns the rows each changed. On MySQL they
 * go in one round trip (a multi-statement query; the first failure stops the
 * rest, and the caller's transaction then rolls back), with START TRANSACTION
 * if it has not gone out yet (see round-trips.ts); SQLite runs them one by
 * one, which costs nothing in process.
 */
export async function executeAll(db: EntityManager, statements: Statement[]): Promise<number[]> {
  const runner = db.queryRunner;
  if (!runner) throw new Error("executeAll runs inside a transaction");
  if (dialectOf(db) === "sqlite") {
    const affected: number[] = [];
    for (const s of statements) affected.push(await execute(db, s.sql, s.params));
    return affected;
  }
  const before = takeBegin(runner);
  const raw = (await runner.query(
    [...before, ...statements.map((s) => s.sql)].join(";\n"),
    statements.flatMap((s) => s.params),
  )) as { affectedRows?: number } | { affectedRows?: number }[];
  const results = before.length + statements.length > 1 ? (raw as unknown[]) : [raw];
  return results
    .slice(before.length)
    .map((r) => (r as { affectedRows?: number }).affectedRows ?? 0);
}

/**
 * Rows of each SELECT, in order. On MySQL they go in one round trip (a
 * multi-statement query), so reads that do not depend on each other's answers
 * cost one wait instead of several; SQLite runs them one by one.
 */
export async function selectAll(db: EntityManager, statements: Statement[]): Promise<unknown[][]> {
  if (dialectOf(db) === "sqlite") {
    const results: unknown[][] = [];
    for (const s of statements) results.push(await select(db, s.sql, s.params));
    return results;
  }
  const before = takeBegin(db.queryRunner);
  const sql = [...before, ...statements.map((s) => s.sql)].join(";\n");
  const params = statements.flatMap((s) => s.params);
  const many = before.length + statements.length > 1;
  const raw = (await readQuery(db, sql, params, !many)) as unknown[];
  return (many ? raw : [raw]).slice(before.length) as unknown[][];
}

/** Raw rows of a SELECT. */
export function select<T>(db: EntityManager, sql: string, params: unknown[] = []): Promise<T[]> {
  return readQuery(db, sql, bindable(db, params), true) as Promise<T[]>;
}

/**
 * Rows of several SELECTs of one shape (the same SQL text), read in one
 * statement: the parts joined by UNION ALL, each row tagged with its part's
 * index (a `part_` column, left on the rows). The parts are padded to a power
 * of two with `padding` (a statement of the same shape that finds nothing, at
 * the cost of an index miss), so a handful of prepared statements serve every
 * batch size.
 */
export async function selectParts<T>(
  db: EntityManager,
  parts: readonly Statement[],
  padding: Statement,
): Promise<T[][]> {
  const all = Array.from(
    { length: powerOfTwoAtLeast(parts.length) },
    (_, i) => parts[i] ?? padding,
  );
  const sql = all
    .map((p, i) => p.sql.replace(/^SELECT /, `SELECT ${i} AS ${PART}, `))
    .join(" UNION ALL ");
  const rows = await select<Record<string, unknown>>(
    db,
    sql,
    all.flatMap((p) => p.params),
  );
  const byPart: T[][] = parts.map(() => []);
  // Rows keep their part_ column: deleting it would turn each into a slow dictionary object.
  for (const row of rows) byPart[Number(row[PART])]?.push(row as T);
  return byPart;
}

const PART = "part_";

/**
 * A raw query. Outside a transaction on MySQL it goes straight to mysql2's
 * pool (the pool TypeORM made, with its settings and queue limit): TypeORM's
 * own path builds a QueryRunner and a broadcaster, connects and releases, and
 * copies every result, for each query — a tenth of a point read's cost. A
 * single statement goes as a prepared statement: MariaDB parses and resolves
 * it once per connection instead of on every call (10–20 % less database CPU
 * per point read, BENCHMARKS.md); mysql2 keeps each connection's statements
 * in a bounded LRU (`maxPreparedStatements`, data-source.ts).
 */
function readQuery(
  db: EntityManager,
  sql: string,
  params: unknown[],
  oneStatement: boolean,
): Promise<unknown> {
  const pool = db.queryRunner ? undefined : mysqlPool(db);
  if (!pool) return db.query(sql, params);
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, result: unknown) => (err ? reject(err) : resolve(result));
    if (!oneStatement) return pool.query(sql, params, done);
    pool.execute(sql, params, (err, result) =>
      // A database at its max_prepared_stmt_count still runs plain queries.
      (err as { errno?: number } | null)?.errno === ER_MAX_PREPARED_STMT_COUNT_REACHED
        ? pool.query(sql, params, done)
        : done(err, result),
    );
  });
}

const ER_MAX_PREPARED_STMT_COUNT_REACHED = 1461;

/**
 * Prepared statements each connection keeps (least recently used closed
 * first). Bounded because MariaDB's max_prepared_stmt_count (16,382 by
 * default) is shared by every replica's every connection.
 */
export const PREPARED_STATEMENTS_PER_CONNECTION = 64;

/**
 * `values` padded to `size` (by default the next power of two) by repeating
 * the last one (IN ignores repeats), so one prepared statement serves every
 * list length of its bucket: lists of 1–100 ids make 8 statements, not 100.
 */
export function padded<T>(values: readonly T[], size = powerOfTwoAtLeast(values.length)): T[] {
  if (values.length === 0) return [];
  return [...values, ...Array<T>(size - values.length).fill(values[values.length - 1])];
}

/** The smallest power of two ≥ `n` (0 for 0). */
export function powerOfTwoAtLeast(n: number): number {
  if (n === 0) return 0;
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

type Done = (err: Error | null, result: unknown) => void;

interface CallbackPool {
  query(sql: string, params: unknown[], done: Done): void;
  execute(sql: string, params: unknown[], done: Done): void;
}

function mysqlPool(db: EntityManager): CallbackPool | undefined {
  if (dialectOf(db) !== "mysql") return undefined;
  return (db.connection.driver as unknown as { pool?: CallbackPool }).pool;
}

/**
 * Deletes up to `max` rows of `table` matching `where`: MySQL has DELETE …
 * LIMIT; SQLite (without that compile option) deletes by rowid.
 */
export function deleteLimited(
  db: EntityManager,
  table: string,
  where: string,
  params: unknown[],
  max: number,
  orderBy?: string,
): Promise<number> {
  const order = orderBy ? ` ORDER BY ${orderBy}` : "";
  if (dialectOf(db) === "sqlite") {
    return execute(
      db,
      `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${where}${order} LIMIT ${Math.trunc(max)})`,
      params,
    );
  }
  return execute(
    db,
    `DELETE FROM ${table} WHERE ${where}${order} LIMIT ${Math.trunc(max)}`,
    params,
  );
}

/**
 * The row-lock clause of a raw SELECT where row locks exist: "update"
 * (exclusive) or "share" (many holders at once, excluding "update").
 */
export const lockClause = (db: EntityManager | Dialect, mode: "update" | "share"): string =>
  dialectOf(db) === "sqlite" ? "" : mode === "update" ? " FOR UPDATE" : " LOCK IN SHARE MODE";

/** Adds `delta` to `rows` counter rows, creating them when missing. */
export function upsertAddSql(
  db: EntityManager | Dialect,
  table: string,
  key: string[],
  column: string,
  rows = 1,
) {
  const columns = [...key, column];
  const row = `(${columns.map(() => "?").join(", ")})`;
  const insert = `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${Array(rows).fill(row).join(", ")}`;
  return dialectOf(db) === "sqlite"
    ? `${insert} ON CONFLICT (${key.join(", ")}) DO UPDATE SET ${column} = ${column} + excluded.${column}`
    : `${insert} ON DUPLICATE KEY UPDATE ${column} = ${column} + VALUES(${column})`;
}

/**
 * SELECT … FOR UPDATE where row locks exist. SQLite has none and needs none:
 * the embedded store runs one transaction at a time (see Database).
 */
export function forUpdate<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
): SelectQueryBuilder<T> {
  return dialectOf(qb.connection) === "sqlite" ? qb : qb.setLock("pessimistic_write");
}
