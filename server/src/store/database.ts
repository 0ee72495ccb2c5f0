import { EventEmitter } from "node:events";
import type { DataSource, EntityManager } from "typeorm";
import { commitInTime, deadlineExceeded, isPast, type Deadline } from "../domain/deadline.js";
import { DomainError } from "../domain/errors.js";
import { dialectOf, type Dialect } from "./dialect.js";
import { isRetryableConflict, isUnavailable } from "./errors.js";
import { beginLazily, hasBegun } from "./round-trips.js";

/** Transactions that appended events (see outbox.ts); checked after commit. */
const transactionsWithEvents = new WeakSet<EntityManager>();

/** Called by the outbox writer: this transaction's commit must wake the relay. */
export function noteEventsWritten(tx: EntityManager): void {
  transactionsWithEvents.add(tx);
}

/**
 * The store's handle: a connected data source plus the transaction-with-retry
 * helper. Emits "events-committed" after a transaction that wrote events
 * commits, so the relay on this replica publishes at once instead of polling.
 */
export class Database extends EventEmitter {
  constructor(
    readonly dataSource: DataSource,
    private readonly retry = { attempts: 5, baseDelayMs: 5, maxDelayMs: 200 },
  ) {
    super();
    this.setMaxListeners(0);
    this.dialect = dialectOf(dataSource);
    this.serial = this.dialect === "sqlite" ? Promise.resolve() : undefined;
  }

  readonly dialect: Dialect;
  private serial: Promise<void> | undefined;

  /** How many calls may wait for a pool connection (DATABASE_POOL_QUEUE_LIMIT); undefined: no bound. */
  get queueLimit(): number | undefined {
    const limit = (this.dataSource.options as { extra?: { queueLimit?: number } }).extra
      ?.queueLimit;
    return limit ? limit : undefined;
  }

  /** The answer when the database cannot be reached, or too many calls already wait for it. */
  static unavailable(): DomainError {
    return new DomainError(
      "unavailable",
      "DATABASE_UNAVAILABLE",
      "the database is unavailable, retry later",
    );
  }

  /** Manager for single-statement reads outside a transaction. */
  get reader(): EntityManager {
    return this.dataSource.manager;
  }

  /**
   * Runs `work` in one READ COMMITTED transaction using only the manager it is
   * given. A deadlock or lock-wait timeout rolls the transaction back (TypeORM
   * does so on any throw) and runs the whole of `work` again with jittered
   * backoff; after the last attempt it becomes ABORTED. `work` must therefore
   * have no effects outside the transaction. `deadline` is the calling
   * call's (or the shared deadline of several): no attempt starts once it has
   * passed, and no COMMIT is sent after it (commitInTime).
   */
  async transaction<T>(work: (tx: EntityManager) => Promise<T>, deadline?: Deadline): Promise<T> {
    if (this.serial) {
      // The embedded SQLite store has one connection: transactions take turns.
      const turn = this.serial.then(() => this.attempt(work, deadline));
      this.serial = turn.then(
        () => undefined,
        () => undefined,
      );
      return turn;
    }
    return this.attempt(work, deadline);
  }

  /** One attempt: BEGIN, work, COMMIT (ROLLBACK on any throw). */
  private async transactOnce<T>(
    work: (tx: EntityManager) => Promise<T>,
    deadline: Deadline | undefined,
  ): Promise<{ result: T; manager: EntityManager }> {
    const runner = this.dataSource.createQueryRunner();
    try {
      if (this.dialect === "sqlite") {
        await runner.startTransaction("SERIALIZABLE");
      } else {
        // READ COMMITTED is each connection's own (mysql-session.ts), not set per transaction.
        await runner.connect();
        beginLazily(runner);
      }
      try {
        const result = await work(runner.manager);
        await commitInTime(deadline, () => runner.commitTransaction());
        return { result, manager: runner.manager };
      } catch (err) {
        if (hasBegun(runner)) await runner.rollbackTransaction().catch(() => undefined);
        throw err;
      }
    } finally {
      await runner.release();
    }
  }

  private async attempt<T>(
    work: (tx: EntityManager) => Promise<T>,
    deadline: Deadline | undefined,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (isPast(deadline)) throw deadlineExceeded();
      try {
        const { result, manager } = await this.transactOnce(work, deadline);
        if (transactionsWithEvents.has(manager)) this.emit("events-committed");
        return result;
      } catch (err) {
        if (isUnavailable(err)) throw Database.unavailable();
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
