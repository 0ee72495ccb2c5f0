import type { EntityManager } from "typeorm";
import { describe, expect, it } from "vitest";
import { padded, select, selectAll, selectParts } from "../../server/src/store/dialect.js";

type Done = (err: Error | null, result: unknown) => void;

/** An EntityManager outside a transaction over a stand-in for mysql2's pool, recording what it was asked. */
function managerOver(pool: {
  execute(sql: string, params: unknown[], done: Done): void;
  query(sql: string, params: unknown[], done: Done): void;
}): EntityManager {
  return {
    queryRunner: undefined,
    connection: { options: { type: "mysql" }, driver: { pool } },
  } as unknown as EntityManager;
}

describe("reads outside a transaction (MySQL)", () => {
  it("send one statement as a prepared statement and several as one plain multi-statement query", async () => {
    const calls: string[] = [];
    const db = managerOver({
      execute: (sql, _p, done) => (calls.push(`execute ${sql}`), done(null, [{ a: 1 }])),
      query: (sql, _p, done) => (calls.push(`query ${sql}`), done(null, [[{ a: 1 }], [{ b: 2 }]])),
    });
    expect(await select(db, "SELECT 1 AS a", [])).toEqual([{ a: 1 }]);
    expect(await selectAll(db, [{ sql: "SELECT 1 AS a", params: [] }])).toEqual([[{ a: 1 }]]);
    expect(
      await selectAll(db, [
        { sql: "SELECT 1 AS a", params: [] },
        { sql: "SELECT 2 AS b", params: [] },
      ]),
    ).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    expect(calls).toEqual([
      "execute SELECT 1 AS a",
      "execute SELECT 1 AS a",
      "query SELECT 1 AS a;\nSELECT 2 AS b",
    ]);
  });

  it("fall back to a plain query when the database holds all the prepared statements it may", async () => {
    const full = Object.assign(new Error("Can't create more than max_prepared_stmt_count"), {
      errno: 1461,
    });
    const db = managerOver({
      execute: (_s, _p, done) => done(full, undefined),
      query: (_s, params, done) => done(null, [{ id: params[0] }]),
    });
    expect(await select(db, "SELECT ? AS id", ["x"])).toEqual([{ id: "x" }]);
  });

  it("pass any other error on", async () => {
    const db = managerOver({
      execute: (_s, _p, done) => done(Object.assign(new Error("gone"), { errno: 2013 }), undefined),
      query: () => {
        throw new Error("not reached");
      },
    });
    await expect(select(db, "SELECT 1", [])).rejects.toThrow("gone");
  });
});

describe("selectParts", () => {
  it("reads parts of one shape in one prepared UNION ALL, padded to a power of two, and hands each part its rows", async () => {
    const sent: { sql: string; params: unknown[] }[] = [];
    const db = managerOver({
      execute: (sql, params, done) => {
        sent.push({ sql, params });
        // Rows out of part order, and a row of the padding part.
        done(null, [
          { part_: 2, v: "c" },
          { part_: 0, v: "a1" },
          { part_: 3, v: "padding" },
          { part_: 0, v: "a2" },
        ]);
      },
      query: () => {
        throw new Error("not reached");
      },
    });
    const part = (v: string) => ({ sql: "SELECT v FROM t WHERE k = ?", params: [v] });
    const rows = await selectParts(db, [part("a"), part("b"), part("c")], part(""));
    expect(rows).toEqual([
      [
        { part_: 0, v: "a1" },
        { part_: 0, v: "a2" },
      ],
      [],
      [{ part_: 2, v: "c" }],
    ]);
    expect(sent).toEqual([
      {
        sql: [0, 1, 2, 3]
          .map((i) => `SELECT ${i} AS part_, v FROM t WHERE k = ?`)
          .join(" UNION ALL "),
        params: ["a", "b", "c", ""],
      },
    ]);
  });
});

describe("padded", () => {
  it("pads a list to the next power of two with its last value, so 1–100 ids make 8 statement shapes", () => {
    expect(padded([])).toEqual([]);
    expect(padded(["a"])).toEqual(["a"]);
    expect(padded(["a", "b", "c"])).toEqual(["a", "b", "c", "c"]);
    expect(padded(["a", "b", "c", "d", "e"])).toEqual(["a", "b", "c", "d", "e", "e", "e", "e"]);
    const lengths = new Set(
      Array.from({ length: 100 }, (_, i) => padded(Array(i + 1).fill("g")).length),
    );
    expect([...lengths]).toEqual([1, 2, 4, 8, 16, 32, 64, 128]);
    // To a given size: a batch's lists all padded to its longest one's bucket.
    expect(padded(["a", "b"], 8)).toEqual(["a", "b", "b", "b", "b", "b", "b", "b"]);
  });
});
