import type { DataSource, EntityManager } from "typeorm";
import { DomainError } from "../domain/errors.js";
import { isRetryableConflict, isUnavailable } from "./errors.js";

/** The store's handle: a connected data source plus the transaction-with-retry helper. */
export class Database {
  constructor(
    readonly dataSource: DataSource,
    private readonly retry = { attempts: 5, baseDelayMs: 5, maxDelayMs: 200 },
  ) {}

  /** Manager for single-statement reads outside a transaction. */
  get reader(): EntityManager {
    return this.dataSource.manager;
  }

  /**
   * Runs `work` in one READ COMMITTED transaction using only the manager it is
   * given. A deadlock or lock-wait timeout rolls the transaction back (TypeORM
   * does so on any throw) and runs the whole of `work` again with jittered
   * backoff; after the last attempt it becomes ABORTED. `work` must therefore
   * have no effects outside the transaction.
   */
  async transaction<T>(work: (tx: EntityManager) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction("READ COMMITTED", work);
      } catch (err) {
        if (isUnavailable(err)) {
          throw new DomainError(
            "unavailable",
            "DATABASE_UNAVAILABLE",
            "the database is unavailable, retry later",
          );
        }
        if (!isRetryableConflict(err)) throw err;
        if (attempt >= this.retry.attempts) {
          throw new DomainError(
            "aborted",
            "TRANSACTION_CONFLICT",
            "the change conflicted with concurrent changes; retry it",
          );
        }
        const cap = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** attempt);
        await new Promise((r) => setTimeout(r, Math.random() * cap));
      }
    }
  }
}
