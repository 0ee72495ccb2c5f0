import type { EntityManager, QueryRunner } from "typeorm";
import type { EventData, EventType, RecordedEvent } from "../domain/events.js";
import type { Group } from "../domain/model.js";
import type { EventRow } from "./entities.js";
import { deleteLimited, execute, indexed, placeholders, readTime, select } from "./dialect.js";

/**
 * Reads and bookkeeping of the event log (the `events` table, which is also
 * the outbox). Writes of new events are in ./outbox.ts.
 */
/** A row as EVENT_COLUMNS selects it (times as the driver returns them). */
type EventRecord = Omit<EventRow, "createdAt"> & { createdAt: Date | string };

const EVENT_COLUMNS =
  "e.outbox_seq AS outboxSeq, e.sequence, e.id, e.type, e.organization_id AS organizationId, " +
  "e.group_id AS groupId, e.cause, e.payload, e.created_at AS createdAt";

function toRecordedEvent(r: EventRecord): RecordedEvent {
  const data = JSON.parse(r.payload) as EventData;
  if (data.kind === "group") {
    const g = data.group as Group & { createdAt: string | Date; updatedAt: string | Date };
    data.group = { ...g, createdAt: new Date(g.createdAt), updatedAt: new Date(g.updatedAt) };
  }
  return {
    outboxSeq: String(r.outboxSeq),
    sequence: String(r.sequence),
    id: r.id,
    type: r.type as EventType,
    organizationId: r.organizationId,
    groupId: r.groupId,
    cause: r.cause === "system" ? "system" : "api",
    createdAt: readTime(r.createdAt),
    data,
  };
}

/**
 * Gives the next `max` unsequenced events (in outbox order) consecutive
 * sequence numbers after the largest one, in one statement, on the embedded
 * SQLite store (MySQL's relay does it in sequenceAndFetch). Run by the relay
 * leader only, inside its transaction: a reader sees a whole batch or none of
 * it, so sequences never appear out of order. Changes to one group lock the
 * group row, so their outbox order is their commit order, and so is their
 * sequence order.
 */
export async function assignSequencesSqlite(tx: EntityManager, max: number): Promise<number> {
  return execute(
    tx,
    `UPDATE events SET sequence = base.top + next.n
     FROM (SELECT COALESCE(MAX(sequence), 0) AS top FROM events) AS base,
          (SELECT outbox_seq, ROW_NUMBER() OVER (ORDER BY outbox_seq) AS n FROM events
           WHERE sequence IS NULL ORDER BY outbox_seq LIMIT ${Math.trunc(max)}) AS next
     WHERE events.outbox_seq = next.outbox_seq`,
  );
}

/**
 * The largest sequence given so far, and up to `max` unsequenced events in
 * outbox order, as consistent reads see them: only transactions that had
 * committed, each with all of its events. (Sequencing with one `UPDATE …
 * WHERE sequence IS NULL ORDER BY outbox_seq` instead reads row by row as it
 * goes: a multi-row INSERT reserves its outbox positions first and writes the
 * rows after, so a scan could pass a transaction's first position before that
 * row existed, find its later rows committed, and sequence them one round
 * ahead of the first.)
 */
const pickStatements = (max: number) => [
  "SELECT COALESCE(MAX(sequence), 0) AS top FROM events",
  `SELECT outbox_seq AS outboxSeq FROM events WHERE sequence IS NULL ` +
    `ORDER BY outbox_seq LIMIT ${Math.trunc(max)}`,
];

/**
 * Consecutive sequence numbers after `top`, in outbox order, for exactly the
 * picked events (one statement: readers see all of them or none). Only the
 * lease holder sequences; should a former one still be finishing a round,
 * `sequence IS NULL` skips what it did and uq_events_sequence refuses a
 * number given twice, failing this round, which the relay retries.
 */
const sequenceStatements = (top: bigint, picked: string[]) => [
  `SET @groups_seq = ${top}`,
  "UPDATE events SET sequence = (@groups_seq := @groups_seq + 1) " +
    `WHERE outbox_seq IN ${placeholders(picked)} AND sequence IS NULL ORDER BY outbox_seq`,
];

/**
 * A relay round on the leader's lease connection, in two round trips on
 * MySQL (the relay shares the event loop with the calls it follows, and under
 * load every round trip waits its turn): pick up to `max` newly committed
 * events, then sequence them and — with `fetch` — read up to `max` sequenced,
 * unpublished events.
 */
export async function sequenceAndFetch(
  lease: QueryRunner,
  max: number,
  fetch: boolean,
): Promise<{ sequenced: number; unpublished: RecordedEvent[] }> {
  const [[{ top }], rows] = (await lease.query(pickStatements(max).join(";\n"))) as [
    { top: string | number }[],
    { outboxSeq: string | number }[],
  ];
  const picked = rows.map((r) => String(r.outboxSeq));
  const sequencing = picked.length === 0 ? [] : sequenceStatements(BigInt(top), picked);
  const statements = [...sequencing, ...(fetch ? [unpublishedStatement(lease.manager, max)] : [])];
  if (statements.length === 0) return { sequenced: 0, unpublished: [] };
  const raw = (await lease.query(statements.join(";\n"), picked)) as unknown;
  const results = statements.length > 1 ? (raw as unknown[]) : [raw];
  return {
    sequenced: sequencing.length ? (results[1] as { affectedRows: number }).affectedRows : 0,
    unpublished: fetch ? (results.at(-1) as EventRecord[]).map(toRecordedEvent) : [],
  };
}

/** The oldest sequenced, unpublished events, in sequence order. */
export async function unpublishedEvents(db: EntityManager, max: number): Promise<RecordedEvent[]> {
  const rows = await select<EventRecord>(db, unpublishedStatement(db, max));
  return rows.map(toRecordedEvent);
}

/** The relay's watermark: every event with a sequence up to it is in the stream. */
const PUBLISHED_THROUGH = "(SELECT published_through FROM relay_progress WHERE id = 1)";

const unpublishedStatement = (db: EntityManager, max: number) =>
  `SELECT ${EVENT_COLUMNS} FROM ${indexed(db, "events", "e", "uq_events_sequence")} ` +
  `WHERE e.sequence > ${PUBLISHED_THROUGH} ORDER BY e.sequence LIMIT ${Math.trunc(max)}`;

/**
 * Records that every event up to `sequence` is in the stream. Only ever
 * moves forward: a former leader finishing a round late cannot move it back.
 */
export async function markPublishedThrough(db: EntityManager, sequence: string): Promise<void> {
  await execute(
    db,
    "UPDATE relay_progress SET published_through = ? WHERE id = 1 AND published_through < ?",
    [sequence, sequence],
  );
}

/** Count and age of the events not yet published (for metrics and logs). */
export async function backlog(db: EntityManager): Promise<{ count: number; oldest: Date | null }> {
  const [row] = await select<{ count: number | string; oldest: Date | string | null }>(
    db,
    // Two index ranges (unsequenced, and sequenced past the watermark); an OR would scan the table.
    "SELECT COUNT(*) AS count, MIN(created_at) AS oldest FROM (" +
      "SELECT created_at FROM events WHERE sequence IS NULL UNION ALL " +
      `SELECT created_at FROM events WHERE sequence > ${PUBLISHED_THROUGH}) AS waiting`,
  );
  return { count: Number(row?.count ?? 0), oldest: row?.oldest ? readTime(row.oldest) : null };
}

/**
 * Deletes up to `max` events recorded before `before`. With `publishedOnly`,
 * events still waiting for NATS are kept whatever their age.
 *
 * The event with the largest sequence is kept however old: the next sequence
 * is counted from it (MAX(sequence)). Pruned, a quiet deployment would hand
 * its numbers out again, to events past the relay's watermark that it would
 * never publish. (The largest sequence only grows, so reading it first is safe.)
 */
export async function pruneEvents(
  db: EntityManager,
  before: Date,
  max: number,
  publishedOnly: boolean,
): Promise<number> {
  const top = await latestSequence(db);
  return deleteLimited(
    db,
    "events",
    `created_at < ? AND sequence < ?${publishedOnly ? ` AND sequence <= ${PUBLISHED_THROUGH}` : ""}`,
    [before, top],
    max,
  );
}

export interface EventFilter {
  types: EventType[];
  organizationId?: string;
  rangeStart?: Date;
  rangeEnd?: Date;
}

/** The sequence and organization of a sequenced event, by id (a cursor), if it exists. */
export async function sequenceOf(
  db: EntityManager,
  eventId: string,
): Promise<{ sequence: string; organizationId: string } | undefined> {
  const rows = await select<{ sequence: string | null; organizationId: string }>(
    db,
    "SELECT sequence, organization_id AS organizationId FROM events WHERE id = ?",
    [eventId],
  );
  const row = rows[0];
  return row?.sequence === null || row?.sequence === undefined
    ? undefined
    : { sequence: String(row.sequence), organizationId: row.organizationId };
}

/** The largest sequence given so far ("now" for a stream). */
export async function latestSequence(db: EntityManager): Promise<string> {
  const rows = await select<{ s: string | number }>(
    db,
    "SELECT COALESCE(MAX(sequence), 0) AS s FROM events",
  );
  return String(rows[0]?.s ?? 0);
}

/** Up to `limit` matching events with sequence > `afterSequence`, oldest first. */
export async function eventsAfter(
  db: EntityManager,
  filter: EventFilter,
  afterSequence: string,
  limit: number,
): Promise<RecordedEvent[]> {
  const where = ["e.sequence > ?"];
  const params: unknown[] = [afterSequence];
  if (filter.organizationId) {
    where.push("e.organization_id = ?");
    params.push(filter.organizationId);
  }
  if (filter.types.length > 0) {
    where.push(`e.type IN ${placeholders(filter.types)}`);
    params.push(...filter.types);
  }
  if (filter.rangeStart) {
    where.push("e.created_at >= ?");
    params.push(filter.rangeStart);
  }
  if (filter.rangeEnd) {
    where.push("e.created_at < ?");
    params.push(filter.rangeEnd);
  }
  const index = filter.organizationId ? "ix_events_org_sequence" : "uq_events_sequence";
  const rows = await select<EventRecord>(
    db,
    `SELECT ${EVENT_COLUMNS} FROM ${indexed(db, "events", "e", index)}
     WHERE ${where.join(" AND ")} ORDER BY e.sequence LIMIT ${Math.trunc(limit)}`,
    params,
  );
  return rows.map(toRecordedEvent);
}
