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

/** Deadlock (1213) or lock-wait timeout (1205): the whole transaction may be retried. */
export function isRetryableConflict(err: unknown): boolean {
  const e = driverError(err);
  return e?.errno === 1213 || e?.errno === 1205;
}

/** Duplicate key (1062); `key` narrows it to one unique index by name. */
export function isDuplicateKey(err: unknown, key?: string): boolean {
  const e = driverError(err);
  if (e?.errno !== 1062) return false;
  return key === undefined || (e.sqlMessage ?? e.message ?? "").includes(key);
}

/** A foreign-key parent row vanished under a concurrent delete (1452). */
export function isMissingParent(err: unknown): boolean {
  return driverError(err)?.errno === 1452;
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

/** The row is still referenced by a child row (1451). */
export function isRowReferenced(err: unknown): boolean {
  return driverError(err)?.errno === 1451;
}
