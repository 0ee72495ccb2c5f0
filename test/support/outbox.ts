import type { Connection, RowDataPacket } from "mysql2/promise";

/** One row of the outbox (the `events` table), as a test reads it straight from the database. */
export interface OutboxRow {
  /** Insert order in the outbox. */
  sequence: number;
  id: string;
  type: string;
  organizationId: string;
  groupId: string;
  cause: string;
  payload: Record<string, unknown>;
}

/** The newest outbox position (0 when empty): take it before a call, then read what the call wrote. */
export async function lastOutboxSeq(sql: Connection): Promise<number> {
  const [rows] = await sql.query<RowDataPacket[]>(
    "SELECT COALESCE(MAX(outbox_seq), 0) AS s FROM events",
  );
  return Number(rows[0].s);
}

/** Every outbox row written after `since`, in insert order, optionally of one organization. */
export async function outboxAfter(
  sql: Connection,
  since: number,
  organizationId?: string,
): Promise<OutboxRow[]> {
  const [rows] = await sql.query<RowDataPacket[]>(
    `SELECT outbox_seq, id, type, organization_id, group_id, cause, payload FROM events
     WHERE outbox_seq > ? ${organizationId ? "AND organization_id = ?" : ""} ORDER BY outbox_seq`,
    organizationId ? [since, organizationId] : [since],
  );
  return rows.map((r) => ({
    sequence: Number(r.outbox_seq),
    id: r.id,
    type: r.type,
    organizationId: r.organization_id,
    groupId: r.group_id,
    cause: r.cause,
    payload: JSON.parse(r.payload) as Record<string, unknown>,
  }));
}
