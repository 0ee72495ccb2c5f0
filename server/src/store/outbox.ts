import type { EntityManager } from "typeorm";
import type { NewEvent } from "../domain/events.js";
import { noteEventsWritten } from "./database.js";
import { execute } from "./dialect.js";

/**
 * Writes events to the outbox (the `events` table) inside the caller's
 * transaction: they commit or roll back with the change they describe. The
 * caller writes them last, after locking the rows they describe, so
 * conflicting changes get `sequence` values in commit order.
 */
export async function appendEvents(tx: EntityManager, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  noteEventsWritten(tx);
  // Large batches go in slices to stay well below max_allowed_packet.
  for (let i = 0; i < events.length; i += 500) {
    const slice = events.slice(i, i + 500);
    await execute(
      tx,
      `INSERT INTO events (id, type, organization_id, group_id, cause, payload, created_at)
       VALUES ${slice.map(() => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
      slice.flatMap((e) => [
        e.id,
        e.type,
        e.organizationId,
        e.groupId,
        e.cause,
        JSON.stringify(e.data),
        e.createdAt,
      ]),
    );
  }
}
