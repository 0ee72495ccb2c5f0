import mysql from "mysql2/promise";

/**
 * What MariaDB did for a case, from its global status counters: the server
 * profile cannot see inside the database, and the CPU table only says how busy
 * it was. Per item (call, or membership of a batch), so a service call can be
 * set against the raw SQL it replaces: statements parsed, rows read and
 * written, buffer-pool page reads (and those that missed the pool and went to
 * disk), fsyncs (durable commits, mostly), pages written back from the pool
 * and row-lock waits.
 *
 * The counters are server-wide: they include the relay's work (part of a write's
 * cost) and anything else running on the database meanwhile ("others' cores").
 */
export interface DbWork {
  statements: number;
  rowsRead: number;
  rowsWritten: number;
  pageReads: number;
  diskReads: number;
  fsyncs: number;
  /** Pages written back from the buffer pool (the cost of dirtying pages at random). */
  pagesFlushed: number;
  lockWaits: number;
}

const COUNTERS: Record<keyof DbWork, string[]> = {
  statements: ["Questions"],
  rowsRead: ["Rows_read"],
  rowsWritten: ["Handler_write", "Handler_update", "Handler_delete"],
  pageReads: ["Innodb_buffer_pool_read_requests"],
  diskReads: ["Innodb_buffer_pool_reads"],
  fsyncs: ["Innodb_data_fsyncs"],
  pagesFlushed: ["Innodb_buffer_pool_pages_flushed"],
  lockWaits: ["Innodb_row_lock_waits"],
};
const NAMES = [...new Set(Object.values(COUNTERS).flat())];
const STATUS_SQL = `SHOW GLOBAL STATUS WHERE Variable_name IN (${NAMES.map((n) => `'${n}'`).join(", ")})`;

async function snapshot(conn: mysql.Connection): Promise<Map<string, number>> {
  const [rows] = (await conn.query(STATUS_SQL)) as unknown as [
    { Variable_name: string; Value: string }[],
  ];
  return new Map(rows.map((r) => [r.Variable_name, Number(r.Value)]));
}

/** One connection that reads the counters at the start and end of each case's measured window. */
export class DbWorkMeter {
  private conn: Promise<mysql.Connection> | undefined;

  constructor(private readonly databaseUrl: string) {}

  /** Starts a window; the returned function ends it and divides by `items`. */
  async start(): Promise<(items: number) => Promise<DbWork | undefined>> {
    this.conn ??= mysql.createConnection({ uri: this.databaseUrl });
    const conn = await this.conn;
    const before = await snapshot(conn);
    return async (items) => {
      if (items <= 0) return undefined;
      const after = await snapshot(conn);
      const per = (names: string[]) =>
        round(names.reduce((sum, n) => sum + (after.get(n)! - before.get(n)!), 0) / items);
      return Object.fromEntries(
        Object.entries(COUNTERS).map(([key, names]) => [key, per(names)]),
      ) as unknown as DbWork;
    };
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    await (await conn)?.end();
  }
}

/** Two decimals below 10, one below 100, whole numbers above. */
const round = (x: number) =>
  Math.abs(x) >= 100
    ? Math.round(x)
    : Math.abs(x) >= 10
      ? Math.round(x * 10) / 10
      : Math.round(x * 100) / 100;
