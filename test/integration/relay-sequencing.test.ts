import mysql from "mysql2/promise";
import type { DataSource } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/src/config.js";
import { createDataSource, migrate } from "../../server/src/store/data-source.js";
import {
  markPublishedThrough,
  pruneEvents,
  sequenceAndFetch,
} from "../../server/src/store/events.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/**
 * The relay's sequencing on MySQL sees whole committed transactions: a
 * transaction that commits while a round is sequencing has all of its events
 * sequenced in a later round, in outbox order, never its later events first.
 * No server runs here, so no relay races the test's own rounds.
 */
let db: TestDatabase;
let ds: DataSource;
const conns: mysql.Connection[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource(loadConfig({ DATABASE_URL: db.url }).database);
  await ds.initialize();
  await migrate(ds);
});

afterAll(async () => {
  for (const c of conns) await c.end().catch(() => undefined);
  await ds?.destroy();
  await db?.drop();
});

async function connection(): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ uri: db.url, timezone: "Z" });
  await c.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
  conns.push(c);
  return c;
}

/**
 * Inserts one event row on `c`, at outbox position `at` if given (standing in
 * for a position AUTO_INCREMENT reserved before the row was written: a
 * multi-row INSERT reserves all its positions first, then writes the rows one
 * by one), and returns its position.
 */
async function insertEvent(c: mysql.Connection, id: string, at?: bigint): Promise<string> {
  const [res] = await c.query<mysql.ResultSetHeader>(
    "INSERT INTO events (outbox_seq, id, type, organization_id, group_id, cause, payload, created_at) " +
      "VALUES (?, ?, 'group.member_added', 'org_seq', 'group_seq', 'api', '{}', NOW(3))",
    [at === undefined ? null : String(at), id],
  );
  return String(res.insertId);
}

async function sequenceOf(outboxSeq: string): Promise<string | null> {
  const [[row]] = await db.sql.query<mysql.RowDataPacket[]>(
    "SELECT sequence FROM events WHERE outbox_seq = ?",
    [outboxSeq],
  );
  return row.sequence === null ? null : String(row.sequence);
}

/** Until the round's UPDATE is under way (it then waits for the held row). */
async function waitForSequencing(): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const [rows] = await db.sql.query<mysql.RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM information_schema.processlist " +
        "WHERE db = ? AND info LIKE 'UPDATE events SET sequence%'",
      [db.name],
    );
    if (Number(rows[0].n) > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  const [procs] = await db.sql.query(
    "SELECT id, command, state, info FROM information_schema.processlist WHERE db = ?",
    [db.name],
  );
  throw new Error(`the sequencing round never reached its UPDATE ${JSON.stringify(procs)}`);
}

describe("relay sequencing on MySQL", () => {
  it("never sequences part of a transaction that commits while a round runs", async () => {
    const writer = await connection(); // a call's transaction, two events
    const other = await connection(); // an event committed before
    const holder = await connection(); // holds that event's row lock, so the round waits there
    const lease = ds.createQueryRunner();
    await lease.connect();
    try {
      // An event sequenced before, as on any running system.
      await insertEvent(other, "event_seq_zero");
      expect((await sequenceAndFetch(lease, 100, false)).sequenced).toBe(1);
      const middle = await insertEvent(other, "event_seq_middle", 100n);
      await holder.query("START TRANSACTION");
      await holder.query("SELECT outbox_seq FROM events WHERE outbox_seq = ? FOR UPDATE", [middle]);
      await writer.query("START TRANSACTION");
      const last = await insertEvent(writer, "event_seq_last", BigInt(middle) + 10n);

      const round = sequenceAndFetch(lease, 100, false);
      await waitForSequencing();
      // While the round waits at `middle`: the writer's event at a position
      // the round has passed, then its commit.
      const first = await insertEvent(writer, "event_seq_first", BigInt(middle) - 1n);
      await writer.query("COMMIT");
      await holder.query("COMMIT");
      await round;

      const [f, l] = [await sequenceOf(first), await sequenceOf(last)];
      expect(await sequenceOf(middle)).not.toBeNull();
      expect(f === null, "both of the transaction's events in one round, or neither").toBe(
        l === null,
      );
      await sequenceAndFetch(lease, 100, false);
      const [a, b] = [BigInt((await sequenceOf(first))!), BigInt((await sequenceOf(last))!)];
      expect(b, "its events in outbox order").toBe(a + 1n);
    } finally {
      await lease.release();
    }
  });

  it("fetches sequenced, unpublished events in sequence order, with or without new ones", async () => {
    const lease = ds.createQueryRunner();
    await lease.connect();
    try {
      const round = await sequenceAndFetch(lease, 100, true);
      expect(round.sequenced).toBe(0);
      expect(round.unpublished.map((e) => e.id)).toEqual([
        "event_seq_zero",
        "event_seq_middle",
        "event_seq_first",
        "event_seq_last",
      ]);
      expect(round.unpublished.map((e) => BigInt(e.sequence))).toEqual(
        [...round.unpublished].map((e) => BigInt(e.sequence)).sort((x, y) => (x < y ? -1 : 1)),
      );
      const c = await connection();
      await insertEvent(c, "event_seq_next");
      const next = await sequenceAndFetch(lease, 100, true);
      expect(next.sequenced).toBe(1);
      expect(next.unpublished.map((e) => e.id).at(-1)).toBe("event_seq_next");
    } finally {
      await lease.release();
    }
  });

  it("fetches only past the published-through watermark, which never moves back", async () => {
    const lease = ds.createQueryRunner();
    await lease.connect();
    try {
      const all = (await sequenceAndFetch(lease, 100, true)).unpublished;
      expect(all.length).toBeGreaterThan(2);
      await markPublishedThrough(ds.manager, all[1].sequence);
      const rest = all.slice(2).map((e) => e.id);
      expect((await sequenceAndFetch(lease, 100, true)).unpublished.map((e) => e.id)).toEqual(rest);
      // A former leader finishing an older round late.
      await markPublishedThrough(ds.manager, all[0].sequence);
      expect((await sequenceAndFetch(lease, 100, true)).unpublished.map((e) => e.id)).toEqual(rest);
    } finally {
      await lease.release();
    }
  });

  it("prunes old events only up to the watermark, and never the newest", async () => {
    const lease = ds.createQueryRunner();
    await lease.connect();
    try {
      const c = await connection();
      for (const id of ["event_prune_a", "event_prune_b", "event_prune_c"])
        await insertEvent(c, id);
      await sequenceAndFetch(lease, 100, true);
      const [rows] = await db.sql.query<mysql.RowDataPacket[]>(
        "SELECT sequence FROM events ORDER BY sequence",
      );
      const all = rows.map((r) => String(r.sequence));
      expect(all.length).toBeGreaterThan(3);
      // All of them old; NATS has acknowledged all but the last three.
      await db.sql.query("UPDATE events SET created_at = created_at - INTERVAL 40 DAY");
      await markPublishedThrough(ds.manager, all.at(-4)!);
      const now = new Date();
      expect(await pruneEvents(ds.manager, now, 10_000, true)).toBe(all.length - 3);
      const left = async () =>
        (await db.sql.query<mysql.RowDataPacket[]>("SELECT sequence FROM events"))[0].map((r) =>
          String(r.sequence),
        );
      expect((await left()).sort()).toEqual(all.slice(-3).sort());
      // With no NATS to wait for, everything old goes but the newest, which
      // the next sequence is counted from.
      await pruneEvents(ds.manager, now, 10_000, false);
      expect(await left()).toEqual([all.at(-1)]);
      await insertEvent(c, "event_after_prune");
      const next = await sequenceAndFetch(lease, 100, false);
      expect(next.sequenced).toBe(1);
      expect((await left()).map(BigInt).sort((x, y) => (x < y ? -1 : 1))).toEqual([
        BigInt(all.at(-1)!),
        BigInt(all.at(-1)!) + 1n,
      ]);
    } finally {
      await lease.release();
    }
  });
});
