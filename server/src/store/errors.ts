/**
 * Classifies driver errors so the domain and the error mapper never look at
 * MySQL error numbers themselves.
 */
interface DriverError {
  errno?: number;
  code?: string;
  message?: string;
  sqlMessage?: string;
}

function driverError(err: unknown): DriverError | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as DriverError & { driverError?: DriverError };
  return e.driverError ?? e;
}

/**
 * Rows a transaction read without locking changed before it wrote them (two
 * changes to one group's members ran side by side and touched the same link).
 * The transaction is rolled back; the domain reruns it under a stronger lock.
 */
export class ConcurrentChange extends Error {
  constructor(what: string) {
    super(`concurrent change: ${what}`);
    this.name = "ConcurrentChange";
  }
}

/** Deadlock (1213) or lock-wait timeout (1205), or a busy SQLite file: the whole transaction may be retried. */
export function isRetryableConflict(err: unknown): boolean {
  const e = driverError(err);
  return e?.errno === 1213 || e?.errno === 1205 || e?.code === "SQLITE_BUSY";
}

/**
 * The columns of each unique key the domain asks about, as SQLite names them
 * in its message ("UNIQUE constraint failed: organizations.external_id").
 */
const SQLITE_UNIQUE_COLUMNS: Record<string, string> = {
  uq_organizations_external_id: "organizations.external_id",
  uq_memberships_org_user:
    "organization_memberships.organization_id, organization_memberships.user_id",
};

/** Duplicate key (MySQL 1062, SQLite UNIQUE/PRIMARY KEY); `key` narrows it to one unique index by name. */
export function isDuplicateKey(err: unknown, key?: string): boolean {
  const e = driverError(err);
  const message = e?.sqlMessage ?? e?.message ?? "";
  if (e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return (
      key === undefined || key === "PRIMARY" || message.includes(SQLITE_UNIQUE_COLUMNS[key] ?? key)
    );
  }
  if (e?.errno !== 1062) return false;
  return key === undefined || message.includes(key);
}

/** A foreign-key parent row vanished under a concurrent delete (MySQL 1452; SQLite FOREIGN KEY). */
export function isMissingParent(err: unknown): boolean {
  const e = driverError(err);
  return e?.errno === 1452 || e?.code === "SQLITE_CONSTRAINT_FOREIGNKEY";
}

/** The database cannot take the request now: pool queue full, connection refused or lost. */
export function isUnavailable(err: unknown): boolean {
  const e = driverError(err);
  if (!e) return false;
  if (e.message === "Queue limit reached.") return true;
  return [
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "PROTOCOL_CONNECTION_LOST",
    "ER_CON_COUNT_ERROR",
    "POOL_CLOSED",
  ].includes(e.code ?? "");
}

/** The row is still referenced by a child row (MySQL 1451; SQLite FOREIGN KEY). */
export function isRowReferenced(err: unknown): boolean {
  const e = driverError(err);
  return e?.errno === 1451 || e?.code === "SQLITE_CONSTRAINT_FOREIGNKEY";
}
