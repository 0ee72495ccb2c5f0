import type { QueryRunner } from "typeorm";

/**
 * Saves a MySQL transaction the round trip of its own START TRANSACTION: that
 * statement rides along with the transaction's first statement batch
 * (selectAll, executeAll). Each round trip costs a full wait for the server,
 * and under load the relay and every call wait their turn behind them. Any
 * other first query (through TypeORM) sends START TRANSACTION on its own
 * first, so every transaction begins before its first statement either way.
 *
 * COMMIT keeps its own round trip: the last writes can wait on row locks, and
 * the deadline is checked between them and COMMIT (see Database).
 */
const notBegun = new WeakSet<QueryRunner>();

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
