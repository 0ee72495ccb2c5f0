/**
 * NATS dies in the middle of a few thousand mixed writes.
 *
 * A real service (child process) relays to a nats-server this file owns. Eight
 * workers drive mixed writes over gRPC; in the middle NATS is SIGKILLed (by
 * PID), the writes go on for several seconds, NATS is restarted on the same
 * port and store, and the writes finish. Then, once the outbox is drained, the
 * stream must hold exactly one message per event row (0 lost, 0 duplicates by
 * Nats-Msg-Id), nothing for no-ops, every group's events in commit order, and
 * ListEvents must return the same set.
 */
import { createClient } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import { unpublishedCount, type TestDatabase } from "../support/database.js";
import { listAllEvents } from "../support/events.js";
import {
  connTo,
  eventRows,
  expectGroupsInCommitOrder,
  expectMembershipAlternation,
  expectOneMessagePerRow,
  grpcTransport,
  keyOfEvent,
  sameMultiset,
  useFaultRig,
} from "../support/faults.js";
import { storedEvents, uniqueStream } from "../support/nats.js";
import type { ServerProcess } from "../support/process.js";
import { sleep, waitFor } from "../support/wait.js";
import { directCaller, Workload, type WorkloadOptions } from "../support/workload.js";

/** Mutating RPCs to issue in all (at least). */
const TOTAL_WRITES = 2_200;
/** Writes after NATS is back (at least), so the drain overlaps new writes. */
const WRITES_AFTER_RESTART = 300;
/** NATS is killed once this many writes are done. */
const KILL_AFTER_WRITES = 700;
/** How long NATS stays down while the writes go on. */
const OUTAGE_MS = 5_000;
const LOAD: WorkloadOptions = {
  workers: 8,
  seed: 1000,
  membersPerWorker: 8,
  sharedMembers: 12,
  deleteMembershipWeight: 2,
  sharedWeight: 22,
};

const rig = useFaultRig();
let db: TestDatabase | undefined;
let server: ServerProcess | undefined;
const { stream, subjectPrefix } = uniqueStream();

beforeAll(async () => {
  db = await rig.database();
  server = await rig.startServer(db, { stream, subjectPrefix }, { logsOnFailure: false });
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async function backlog(): Promise<{ unpublished: number; total: number }> {
  const [rows] = await db!.sql.query<RowDataPacket[]>("SELECT COUNT(*) AS total FROM events");
  return { total: Number(rows[0].total), unpublished: await unpublishedCount(db!) };
}

// ---------------------------------------------------------------------------

describe("NATS killed in the middle of the writes", () => {
  it("keeps every write succeeding, then publishes every event exactly once, in per-group commit order", async () => {
    onTestFailed(() => {
      console.log(`server logs (last 60 lines):\n${server?.logs.slice(-60).join("\n")}`);
    });
    const nats = rig.nats();
    let phase: "before" | "outage" | "after" = "before";
    let writesAtRestart = Infinity;
    const load: Workload = new Workload(
      directCaller(connTo(server!)),
      LOAD,
      () =>
        phase === "after" &&
        load.writes >= Math.max(TOTAL_WRITES, writesAtRestart + WRITES_AFTER_RESTART),
    );
    await load.setupShared();

    const workers = load.run();

    // Let the relay publish for a while, then take NATS away.
    await load.firstWrites(KILL_AFTER_WRITES);
    const beforeKill = await backlog();
    const writesAtKill = load.writes;
    await nats.kill();
    phase = "outage";
    const outageStarted = Date.now();
    let outageBacklog = 0;
    while (Date.now() - outageStarted < OUTAGE_MS) {
      outageBacklog = Math.max(outageBacklog, (await backlog()).unpublished);
      await sleep(250);
    }
    const writesDuringOutage = load.writes - writesAtKill;
    const errorsDuringOutage = [...load.errors];
    await nats.restart();
    writesAtRestart = load.writes;
    phase = "after";
    await workers;
    const writesAtEnd = load.writes;

    expect(load.errors, "every RPC succeeds, NATS up or down").toEqual([]);
    expect(errorsDuringOutage).toEqual([]);
    expect(load.anomalies, "responses agree with the workers' model").toEqual([]);
    expect(writesAtEnd).toBeGreaterThanOrEqual(TOTAL_WRITES);
    expect(writesAtEnd - writesAtRestart).toBeGreaterThanOrEqual(WRITES_AFTER_RESTART);
    expect(writesDuringOutage, "writes went on while NATS was down").toBeGreaterThan(100);
    expect(outageBacklog, "the outbox held events while NATS was down").toBeGreaterThan(0);
    expect(load.noops).toBeGreaterThan(50);

    // Drain: every row sequenced and published.
    const drained = await waitFor(
      "the relay to drain the outbox",
      async () => {
        const b = await backlog();
        return b.unpublished === 0 ? b : undefined;
      },
      60_000,
    );
    const rows = await eventRows(db!);
    const expectedTotal = load.expectedTotal();
    console.log(
      `nats-outage: ${writesAtEnd} writes (${writesDuringOutage} while NATS was down, ${writesAtEnd - writesAtRestart} after its restart, ` +
        `${load.noops} no-ops), ${rows.length} events; backlog at kill ${beforeKill.unpublished}, ` +
        `peak during outage ${outageBacklog}`,
    );
    expect(drained.total).toBe(rows.length);
    expect(rows.length, "one event per change, none for no-ops").toBe(expectedTotal);
    expect(rows.filter((r) => r.sequence === null || !r.published)).toEqual([]);

    const stored = await storedEvents(await rig.nc(), stream);
    const rowById = expectOneMessagePerRow(stored, rows);

    // Each message: its id, subject, headers and payload agree with its row.
    const wrong: string[] = [];
    for (const s of stored) {
      const row = rowById.get(s.headers["Nats-Msg-Id"])!;
      const e = s.event;
      if (
        e.id !== row.id ||
        s.headers["ce-id"] !== row.id ||
        s.headers["ce-type"] !== row.type ||
        e.type !== row.type ||
        e.organizationId !== row.organization_id ||
        String(e.sequence) !== row.sequence ||
        s.subject !== `${subjectPrefix}.${row.organization_id}.${row.type}`
      ) {
        wrong.push(
          `stream seq ${s.seq}: ${JSON.stringify(s.headers)} ${s.subject} seq=${e.sequence}`,
        );
      }
    }
    expect(wrong).toEqual([]);

    // Per group: stream order = sequence order = outbox (commit) order; groups
    // written by one worker: exactly the expected events, in the order the
    // writes were acknowledged.
    const byGroup = expectGroupsInCommitOrder(stored, rowById, load.owned);

    // Shared groups: the announced events, and per membership added/removed alternate in stream order.
    for (const [g, expected] of load.shared) {
      const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
      expect(sameMultiset(keys, expected), `events of shared group ${g}`).toBe(true);
      expectMembershipAlternation(g, byGroup.get(g) ?? []);
    }

    // Every stored event belongs to a group the workers wrote, in the right organization.
    for (const s of stored) {
      const g = rowById.get(s.event.id)!.group_id;
      expect(load.orgOf.get(g)).toBe(s.event.organizationId);
    }

    // ListEvents returns the same set, in sequence order.
    const listed = await listAllEvents(createClient(EventsService, grpcTransport(server!)));
    expect(listed.length).toBe(rows.length);
    expect(new Set(listed.map((e) => e.id))).toEqual(new Set(rows.map((r) => r.id)));
    const listedSeqs = listed.map((e) => e.sequence);
    expect(listedSeqs.every((s, i) => i === 0 || s > listedSeqs[i - 1])).toBe(true);
  }, 150_000);
});
