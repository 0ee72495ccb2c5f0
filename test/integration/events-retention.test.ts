/**
 * Retention of the event log (SPEC §3 ListEvents, §5): the relay prunes
 * events older than EVENTS_RETENTION_DAYS (test/integration/relay-sequencing
 * covers that it never prunes one still waiting for NATS), and sequence
 * numbers keep increasing across a prune that finds every event
 * old, as a deployment quiet for longer than the retention would: new events
 * are numbered after the old ones and still reach the stream.
 */
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectNats,
  deleteStream,
  SHARED_NATS_URL,
  storedEvents,
  uniqueStream,
} from "../support/nats.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { until } from "../support/wait.js";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectNats();
});

afterAll(async () => {
  await nc?.close();
});

describe.each([
  ["publishing to NATS", true],
  ["with no NATS configured", false],
])("event retention, %s", (_, withNats) => {
  let t: TestServer;
  const { stream, subjectPrefix } = uniqueStream();

  beforeAll(async () => {
    t = await startTestServer(
      withNats
        ? { NATS_URL: SHARED_NATS_URL, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: subjectPrefix }
        : {},
      { relay: { pollIntervalMs: 50, pruneIntervalMs: 100 } },
    );
  });

  afterAll(async () => {
    await t?.close();
    if (withNats) await deleteStream(nc, stream);
  });

  const sequences = async (): Promise<number[]> => {
    const [rows] = await t.db.sql.query<RowDataPacket[]>(
      "SELECT sequence FROM events ORDER BY outbox_seq",
    );
    return rows.map((r) => (r.sequence === null ? 0 : Number(r.sequence)));
  };
  /** Every event sequenced and, with NATS, published. */
  const relayed = async () => {
    const [[row]] = await t.db.sql.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM events CROSS JOIN relay_progress p
       WHERE sequence IS NULL OR (? AND sequence > p.published_through)`,
      [withNats],
    );
    return Number(row.n) === 0;
  };
  const createGroups = async (orgId: string, n: number) => {
    const c = t.clients("grpc");
    for (let i = 0; i < n; i++)
      await c.groups.createGroup({ organizationId: orgId, name: `g${i}` });
  };

  it("prunes what is past retention, keeps numbering after it, and publishes what comes next", async () => {
    const c = t.clients("grpc");
    const orgId = (await c.orgs.createOrganization({ name: "Quiet" })).organization!.id;
    await createGroups(orgId, 5);
    await until("every event relayed", relayed);
    expect(await sequences()).toEqual([1, 2, 3, 4, 5]);

    // Forty days pass with no change (retention is 30 days).
    await t.db.sql.query("UPDATE events SET created_at = created_at - INTERVAL 40 DAY");
    await until("the old events pruned", async () => (await sequences()).length === 1);
    // The newest is kept, however old: the numbering continues from it.
    expect(await sequences()).toEqual([5]);

    await createGroups(orgId, 3);
    await until("every event relayed", relayed);
    // The next prune may take 5 now that it is no longer the newest.
    expect([
      [5, 6, 7, 8],
      [6, 7, 8],
    ]).toContainEqual(await sequences());
    if (withNats) {
      const stored = await storedEvents(nc, stream);
      expect(stored.map((m) => Number(m.event.sequence))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    }
  });
});
