import mysql2 from "mysql2";

/**
 * What every MySQL/MariaDB connection of the service sets once, before its
 * first statement (one round trip per connection, none per transaction).
 *
 * READ COMMITTED: every transaction's reads see what has committed by the
 * time of each statement, which the member-change and outbox logic is built
 * on (database.ts).
 *
 * `eq_range_index_dive_limit = 2`: a condition with two or more equality
 * ranges on an index (`group_id IN (…)`, ids the caller chose) is estimated
 * from the index statistics instead of by a descent of the B-tree per value
 * before the statement runs. CheckGroupMembership's ten group ids then cost
 * one descent of the membership's links instead of ten dives and ten
 * descents: 11 % less MariaDB CPU per check
 * (BENCHMARKS.md, `npm run bench:ab -- --store mariadb`). A single equality
 * keeps its dive, so a skewed prefix (one group of a million members) is
 * still estimated from the rows it has.
 */
export const SESSION_SETUP = [
  "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
  "SET SESSION eq_range_index_dive_limit = 2",
];

/**
 * Makes `pool` run SESSION_SETUP on each connection it opens, before handing
 * it out (a connection runs its commands in order). The service's pool and
 * the bench's raw baselines both go through here.
 */
export function setUpSessions(pool: mysql2.Pool): void {
  pool.on("connection", (connection) => {
    // A connection that did not take its settings must not serve: closed, it
    // fails the statement it was handed out for, and the pool opens another.
    for (const sql of SESSION_SETUP)
      connection.query(sql, (err) => {
        if (err) connection.destroy();
      });
  });
}

/** mysql2 with its pools set up by setUpSessions: for TypeORM's `driver` option. */
export const mysqlDriver: typeof mysql2 = {
  ...mysql2,
  createPool(config: mysql2.PoolOptions | string) {
    const pool = mysql2.createPool(config as mysql2.PoolOptions);
    setUpSessions(pool);
    return pool;
  },
} as typeof mysql2;
