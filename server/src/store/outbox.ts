import type { EntityManager } from "typeorm";
import type { NewEvent } from "../domain/events.js";
import { noteEventsWritten } from "./database.js";
import { executeAll, type Statement } from "./dialect.js";

/**
 * Writes events to the outbox (the `events` table) inside the caller's
 * transaction: they commit or roll back with the change they describe. The
 * caller writes them last, after locking the rows they describe, so
 * conflicting changes get `sequence` values in commit order.
 */
export async function appendEvents(tx: EntityManager, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await executeAll(tx, eventStatements(tx, events));
}

/**
 * The INSERTs that append `events` to the outbox, for a caller that sends
 * them together with its other writes (see executeAll). Large batches go in
 * slices to stay well below max_allowed_packet.
 */
export function eventStatements(tx: EntityManager, events: NewEvent[]): Statement[] {
  if (events.length > 0) noteEventsWritten(tx);
  const statements: Statement[] = [];
  for (let i = 0; i < events.length; i += 500) {
    const slice = events.slice(i, i + 500);
    statements.push({
      sql: `INSERT INTO events (id, type, organization_id, group_id, cause, payload, created_at)
       VALUES ${slice.map(() => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
      params: slice.flatMap((e) => [
        e.id,
        e.type,
        e.organizationId,
        e.groupId,
        e.cause,
        JSON.stringify(e.data),
        e.createdAt,
      ]),
    });
  }
  return statements;
}
