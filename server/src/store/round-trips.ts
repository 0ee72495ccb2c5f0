import type { QueryRunner } from "typeorm";
import { throwIfPastDeadline } from "../domain/deadline.js";

/**
 * Saves a MySQL transaction its own round trips for START TRANSACTION and
 * COMMIT. Each costs a full wait for the server, and on a loaded machine the
 * socket writes of SQL were a third of the server's busy time on the write
 * path. So START TRANSACTION rides along with the transaction's first
 * statement batch (selectAll, executeAll), and a change whose last batch
 * cannot fail half-way-and-commit (a failed statement stops a multi-statement
 * query, so a COMMIT after it never runs) sends COMMIT with that batch.
 *
 * Any other first query (through TypeORM) sends START TRANSACTION on its own
 * first, so every transaction begins before its first statement either way.
 */
const notBegun = new WeakSet<QueryRunner>();
const committed = new WeakSet<QueryRunner>();

/** Marks `runner` as in a transaction whose START TRANSACTION is still to be sent. */
export function beginLazily(runner: QueryRunner): void {
  notBegun.add(runner);
  const state = runner as unknown as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = true;
  state.transactionDepth = 1;
  const query = runner.query.bind(runner);
  runner.query = (async (...args: Parameters<QueryRunner["query"]>) => {
    if (notBegun.delete(runner)) await query("START TRANSACTION");
    return query(...args);
  }) as QueryRunner["query"];
}

/** Whether START TRANSACTION has gone out (else there is nothing to roll back). */
export function hasBegun(runner: QueryRunner): boolean {
  return !notBegun.has(runner);
}

/** The statements to send before a batch: START TRANSACTION if it has not been sent yet. */
export function takeBegin(runner: QueryRunner | undefined): string[] {
  return runner && notBegun.delete(runner) ? ["START TRANSACTION"] : [];
}

/** The COMMIT to send after a batch; throws instead when the call's deadline has passed. */
export function commitStatement(): string[] {
  // A caller already answered DEADLINE_EXCEEDED must not see its change happen later.
  throwIfPastDeadline();
  return ["COMMIT"];
}

/** Records that the batch carrying COMMIT succeeded: the transaction is over. */
export function noteCommitted(runner: QueryRunner): void {
  committed.add(runner);
  const state = runner as unknown as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = false;
  state.transactionDepth = 0;
}

/** Whether the transaction on `runner` was committed by a batch (its own COMMIT is then not sent). */
export function wasCommitted(runner: QueryRunner): boolean {
  return committed.has(runner);
}
