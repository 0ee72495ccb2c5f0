/**
 * The relay crashes (GROUPS_FAULT_INJECTION) at its two dangerous points:
 *
 * (a) crash-before-publish: the writes committed, the relay dies before it
 *     publishes them. A new process on the same database publishes every
 *     event, once.
 * (b) crash-after-ack: JetStream acknowledged the batch, the relay dies before
 *     marking the rows. A new process publishes them again; JetStream drops the
 *     re-publishes (same Nats-Msg-Id), so the stream still holds one copy each.
 *
 * To crash at a known point with a known set of events, the test itself holds
 * the relay lease (the MySQL named lock `groups_relay:<database>`) while the
 * faulty process takes the writes, then lets go: the faulty process becomes
 * the leader with the whole batch waiting, and crashes on it.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { EventCause, type Event } from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import {
  connectNats,
  startNatsProcess,
  storedEvents,
  uniqueStream,
  type NatsProcess,
  type StoredEvent,
} from "../support/nats.js";
import { startServerProcess, type ServerProcess } from "../support/process.js";

let nats: NatsProcess | undefined;
let nc: NatsConnection | undefined;
const databases: TestDatabase[] = [];
const processes: ServerProcess[] = [];

beforeAll(async () => {
  nats = await startNatsProcess();
  nc = await connectNats(nats.url);
});

afterAll(async () => {
  for (const p of processes) await p.kill("SIGKILL").catch(() => undefined);
  await nc?.close().catch(() => undefined);
  // Removes the store directory, and the test streams with it.
  await nats?.stop().catch(() => undefined);
  for (const db of databases) await db.drop().catch(() => undefined);
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

interface Conn {
  groups: Client<typeof GroupsService>;
  orgs: Client<typeof OrganizationsService>;
}

function connTo(p: ServerProcess): Conn {
  const t = createGrpcTransport({ baseUrl: `http://127.0.0.1:${p.grpcPort}` });
  return { groups: createClient(GroupsService, t), orgs: createClient(OrganizationsService, t) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
      );
    }
    await sleep(100);
  }
}

async function exitWithin(p: ServerProcess, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"still running">((resolve) => {
    timer = setTimeout(() => resolve("still running"), timeoutMs);
  });
  const result = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  return result;
}

interface EventRow {
  outbox_seq: string;
  sequence: string | null;
  id: string;
  type: string;
  organization_id: string;
  group_id: string;
  published_at: Date | null;
}

async function eventRows(db: TestDatabase): Promise<EventRow[]> {
  const [rows] = await db.sql.query<RowDataPacket[]>(
    `SELECT CAST(outbox_seq AS CHAR) AS outbox_seq, CAST(sequence AS CHAR) AS sequence, id, type,
            organization_id, group_id, published_at
     FROM events ORDER BY outbox_seq`,
  );
  return rows as EventRow[];
}

/** Messages in the stream (0 when the relay never got to create it). */
async function streamState(stream: string): Promise<{ messages: number; lastSeq: number }> {
  const jsm = await nc!.jetstreamManager();
  try {
    const info = await jsm.streams.info(stream);
    return { messages: info.state.messages, lastSeq: info.state.last_seq };
  } catch (err) {
    if (/stream not found/i.test(String(err))) return { messages: 0, lastSeq: 0 };
    throw err;
  }
}

const lockName = (db: TestDatabase) => `groups_relay:${db.name}`.slice(0, 64);

/** Takes the relay lease on the test's own connection, so no server process can relay. */
async function holdRelayLease(db: TestDatabase): Promise<void> {
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT GET_LOCK(?, 10) AS got", [
    lockName(db),
  ]);
  expect(Number(rows[0].got), "the test holds the relay lease").toBe(1);
}

async function releaseRelayLease(db: TestDatabase): Promise<void> {
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT RELEASE_LOCK(?) AS released", [
    lockName(db),
  ]);
  expect(Number(rows[0].released)).toBe(1);
}

type Cause = "api" | "system";
const memberKey = (type: string, membershipId: string, cause: Cause) =>
  `${type}|${membershipId}|${cause}`;
const groupKey = (type: string, g: { name: string; description: string }, cause: Cause) =>
  `${type}|${g.name}|${g.description}|${cause}`;

function keyOfEvent(e: Event): string {
  const cause =
    e.cause === EventCause.API ? "api" : e.cause === EventCause.SYSTEM ? "system" : "unspecified";
  if (e.data.case === "member")
    return `${e.type}|${e.data.value.organizationMembershipId}|${cause}`;
  if (e.data.case === "group") {
    const g = e.data.value.group;
    return `${e.type}|${g?.name}|${g?.description}|${cause}`;
  }
  return `${e.type}|no payload`;
}

const sameMultiset = (xs: string[], ys: string[]) =>
  [...xs].sort().join("\n") === [...ys].sort().join("\n");

/**
 * One client, one call after another: groups created, members added (one by
 * one and in batches), removed, groups renamed, a membership deleted (a
 * system cascade), a group deleted, and some idempotent no-ops. Returns, per
 * group, the expected events transaction by transaction, in commit order.
 */
async function scriptedWrites(c: Conn, tag: string): Promise<Map<string, string[][]>> {
  const expected = new Map<string, string[][]>();
  const { organization } = await c.orgs.createOrganization({ name: `crash-${tag}` });
  const org = organization!.id;
  const members: string[] = [];
  for (let i = 0; i < 8; i++) {
    const { organizationMembership } = await c.orgs.createOrganizationMembership({
      organizationId: org,
      userId: `${tag}-u${i}`,
    });
    members.push(organizationMembership!.id);
  }
  const groups: { id: string; name: string; description: string }[] = [];
  for (let i = 0; i < 4; i++) {
    const name = `${tag}-g${i}`;
    const { group } = await c.groups.createGroup({
      organizationId: org,
      name,
      requestId: `${tag}-rq${i}`,
    });
    groups.push({ id: group!.id, name, description: "" });
    expected.set(group!.id, [[groupKey("group.created", { name, description: "" }, "api")]]);
  }
  const push = (g: string, keys: string[]) => expected.get(g)!.push(keys);
  for (const [i, g] of groups.entries()) {
    // Half the members one by one, the rest in one batch.
    for (const m of members.slice(0, 4)) {
      const res = await c.groups.addGroupMember({
        organizationId: org,
        groupId: g.id,
        organizationMembershipId: m,
      });
      expect(res.added).toBe(true);
      push(g.id, [memberKey("group.member_added", m, "api")]);
    }
    await c.groups.batchAddGroupMembers({
      organizationId: org,
      groupId: g.id,
      organizationMembershipIds: members.slice(4),
    });
    push(
      g.id,
      members.slice(4).map((m) => memberKey("group.member_added", m, "api")),
    );
    // No-ops: already a member, not a member, same name, replayed create.
    const again = await c.groups.addGroupMember({
      organizationId: org,
      groupId: g.id,
      organizationMembershipId: members[0],
    });
    expect(again.added).toBe(false);
    await c.groups.updateGroup({ organizationId: org, groupId: g.id, name: g.name });
    await c.groups.createGroup({ organizationId: org, name: g.name, requestId: `${tag}-rq${i}` });
    // Changes.
    await c.groups.removeGroupMember({
      organizationId: org,
      groupId: g.id,
      organizationMembershipId: members[1],
    });
    push(g.id, [memberKey("group.member_removed", members[1], "api")]);
    const gone = await c.groups.removeGroupMember({
      organizationId: org,
      groupId: g.id,
      organizationMembershipId: members[1],
      allowMissing: true,
    });
    expect(gone.removed).toBe(false);
    g.name = `${g.name}-renamed`;
    g.description = "renamed";
    await c.groups.updateGroup({
      organizationId: org,
      groupId: g.id,
      name: g.name,
      description: g.description,
    });
    push(g.id, [groupKey("group.updated", g, "api")]);
  }
  // A cascade: the membership leaves every group (cause system).
  await c.orgs.deleteOrganizationMembership({ organizationMembershipId: members[2] });
  for (const g of groups) push(g.id, [memberKey("group.member_removed", members[2], "system")]);
  await c.groups.deleteGroup({ organizationId: org, groupId: groups[3].id });
  push(groups[3].id, [groupKey("group.deleted", groups[3], "api")]);
  return expected;
}

const expectedCount = (expected: Map<string, string[][]>) =>
  [...expected.values()].flat().reduce((n, tx) => n + tx.length, 0);

/**
 * The stream holds exactly one message per event row (by Nats-Msg-Id), each
 * matching its row, and per group the expected events in sequence (= commit)
 * order.
 */
function checkStream(
  stored: StoredEvent[],
  rows: EventRow[],
  expected: Map<string, string[][]>,
  subjectPrefix: string,
) {
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const count = new Map<string, number>();
  for (const s of stored) {
    const id = s.headers["Nats-Msg-Id"];
    count.set(id, (count.get(id) ?? 0) + 1);
  }
  expect(
    [...count].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`),
    "stored duplicates",
  ).toEqual([]);
  expect(
    rows.filter((r) => !count.has(r.id)).map((r) => `${r.id} ${r.type}`),
    "events lost",
  ).toEqual([]);
  expect(
    stored.filter((s) => !rowById.has(s.headers["Nats-Msg-Id"])).map((s) => s.seq),
    "messages without an event row",
  ).toEqual([]);
  expect(stored.length).toBe(rows.length);

  const byGroup = new Map<string, StoredEvent[]>();
  for (const s of stored) {
    const row = rowById.get(s.headers["Nats-Msg-Id"])!;
    expect(s.event.id).toBe(row.id);
    expect(s.headers["ce-id"]).toBe(row.id);
    expect(String(s.event.sequence)).toBe(row.sequence);
    expect(s.subject).toBe(`${subjectPrefix}.${row.organization_id}.${row.type}`);
    byGroup.set(row.group_id, [...(byGroup.get(row.group_id) ?? []), s]);
  }
  for (const [g, list] of byGroup) {
    const seqs = list.map((s) => BigInt(rowById.get(s.event.id)!.sequence!));
    const outbox = list.map((s) => BigInt(rowById.get(s.event.id)!.outbox_seq));
    expect(
      seqs.every((q, i) => i === 0 || q > seqs[i - 1]),
      `stream order of ${g} = sequence order`,
    ).toBe(true);
    expect(
      outbox.every((q, i) => i === 0 || q > outbox[i - 1]),
      `stream order of ${g} = commit order`,
    ).toBe(true);
  }
  for (const [g, txs] of expected) {
    const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
    let at = 0;
    const got = txs.map((tx) => keys.slice(at, (at += tx.length)));
    const ok = at === keys.length && txs.every((tx, i) => sameMultiset(tx, got[i]));
    expect(ok, `events of ${g}: expected ${JSON.stringify(txs)}, got ${JSON.stringify(keys)}`).toBe(
      true,
    );
  }
}

async function startServer(
  db: TestDatabase,
  s: { stream: string; subjectPrefix: string },
  fault?: string,
): Promise<ServerProcess> {
  const p = await startServerProcess({
    DATABASE_URL: db.url,
    AUTH_DISABLED: "1",
    NATS_URL: nats!.url,
    NATS_STREAM: s.stream,
    NATS_SUBJECT_PREFIX: s.subjectPrefix,
    RELAY_POLL_INTERVAL_MS: "100",
    ...(fault ? { GROUPS_FAULT_INJECTION: fault } : {}),
  });
  processes.push(p);
  onTestFailed(() => {
    console.log(`logs of pid ${p.pid} (last 40 lines):\n${p.logs.slice(-40).join("\n")}`);
  });
  return p;
}

async function waitUntilAllPublished(db: TestDatabase, total: number): Promise<EventRow[]> {
  return waitFor(
    `all ${total} events published`,
    async () => {
      const rows = await eventRows(db);
      return rows.length === total && rows.every((r) => r.published_at !== null) ? rows : undefined;
    },
    30_000,
  );
}

// ---------------------------------------------------------------------------

describe("the relay crashes", () => {
  it("between commit and publish: the events are published after the restart, once", async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const s = uniqueStream();

    await holdRelayLease(db);
    const faulty = await startServer(db, s, "crash-before-publish");
    const expected = await scriptedWrites(connTo(faulty), "a");
    const n = expectedCount(expected);

    // Every write committed its events; nobody could relay them yet.
    let rows = await eventRows(db);
    expect(rows.length).toBe(n);
    expect(rows.filter((r) => r.published_at !== null || r.sequence !== null)).toEqual([]);
    expect(faulty.logs.some((l) => l.includes("took the relay lease"))).toBe(false);

    // Let go: the faulty process takes the lease and dies before publishing.
    await releaseRelayLease(db);
    const exit = await exitWithin(faulty, 20_000);
    expect(exit, "the process crashed").toEqual({ code: null, signal: "SIGKILL" });
    expect(faulty.logs.some((l) => l.includes("crashing the relay before publish"))).toBe(true);
    rows = await eventRows(db);
    expect(rows.length).toBe(n);
    expect(
      rows.filter((r) => r.published_at !== null),
      "nothing marked published",
    ).toEqual([]);
    expect((await streamState(s.stream)).messages, "nothing reached the stream").toBe(0);

    // A new process without the fault, on the same database.
    const healthy = await startServer(db, s);
    // And it keeps working: one more change after the restart.
    const c = connTo(healthy);
    const g = [...expected.keys()][0];
    const [{ organization_id: org }] = rows.filter((r) => r.group_id === g);
    await c.groups.updateGroup({ organizationId: org, groupId: g, description: "after restart" });
    const { group } = await c.groups.getGroup({ organizationId: org, groupId: g });
    expected
      .get(g)!
      .push([
        groupKey("group.updated", { name: group!.name, description: "after restart" }, "api"),
      ]);

    rows = await waitUntilAllPublished(db, n + 1);
    const stored = await storedEvents(nc!, s.stream);
    checkStream(stored, rows, expected, s.subjectPrefix);
    expect(healthy.logs.some((l) => l.includes("took the relay lease"))).toBe(true);
  }, 60_000);

  it("between commit and publish while the writes go on: every acknowledged write's event is published after the restart", async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const s = uniqueStream();

    // The faulty process is the leader from the start; its first batch kills it.
    const faulty = await startServer(db, s, "crash-before-publish");
    await waitFor(
      "the faulty process to take the relay lease",
      async () => (faulty.logs.some((l) => l.includes("took the relay lease")) ? true : undefined),
      15_000,
    );
    const c = connTo(faulty);
    const { organization } = await c.orgs.createOrganization({ name: "crash-live" });
    const org = organization!.id;
    const acked: string[] = [];
    let unanswered: string | undefined;
    for (let k = 0; k < 200 && unanswered === undefined; k++) {
      try {
        const { group } = await c.groups.createGroup({
          organizationId: org,
          name: `live-${k}`,
          requestId: `live-rq${k}`,
        });
        acked.push(group!.id);
      } catch {
        unanswered = `live-rq${k}`; // the process died under this call: outcome unknown
      }
    }
    expect(unanswered, "a write found the process dead").toBeDefined();
    const exit = await exitWithin(faulty, 20_000);
    expect(exit).toEqual({ code: null, signal: "SIGKILL" });
    expect(faulty.logs.some((l) => l.includes("crashing the relay before publish"))).toBe(true);
    expect(acked.length).toBeGreaterThan(0);

    let rows = await eventRows(db);
    const created = new Set(rows.map((r) => r.group_id));
    expect(
      acked.filter((g) => !created.has(g)),
      "acknowledged writes without event",
    ).toEqual([]);
    expect(rows.filter((r) => r.published_at !== null)).toEqual([]);
    expect((await streamState(s.stream)).messages).toBe(0);

    // After the restart, the unanswered call is retried with its request_id:
    // it either finds the group it created or creates it, one event either way.
    const healthy = await startServer(db, s);
    const k = Number(unanswered!.slice("live-rq".length));
    const { group } = await connTo(healthy).groups.createGroup({
      organizationId: org,
      name: `live-${k}`,
      requestId: unanswered!,
    });
    const expected = new Map<string, string[][]>();
    for (const [i, g] of [...acked, group!.id].entries()) {
      expected.set(g, [[groupKey("group.created", { name: `live-${i}`, description: "" }, "api")]]);
    }
    rows = await waitUntilAllPublished(db, acked.length + 1);
    checkStream(await storedEvents(nc!, s.stream), rows, expected, s.subjectPrefix);
  }, 60_000);

  it("after the ack, before marking: JetStream drops the re-publish, the stream keeps one copy", async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const s = uniqueStream();

    await holdRelayLease(db);
    const faulty = await startServer(db, s, "crash-after-ack");
    const expected = await scriptedWrites(connTo(faulty), "b");
    const n = expectedCount(expected);
    expect((await eventRows(db)).length).toBe(n);

    await releaseRelayLease(db);
    const exit = await exitWithin(faulty, 20_000);
    expect(exit, "the process crashed").toEqual({ code: null, signal: "SIGKILL" });
    expect(faulty.logs.some((l) => l.includes("crashing the relay after ack, before mark"))).toBe(
      true,
    );

    // JetStream has every event; the database still says none is published.
    let rows = await eventRows(db);
    expect(rows.length).toBe(n);
    expect(rows.filter((r) => r.published_at !== null)).toEqual([]);
    expect(rows.filter((r) => r.sequence === null)).toEqual([]);
    const afterCrash = await streamState(s.stream);
    expect(afterCrash).toEqual({ messages: n, lastSeq: n });
    checkStream(await storedEvents(nc!, s.stream), rows, expected, s.subjectPrefix);

    // A new process publishes them all again; JetStream drops every copy.
    const healthy = await startServer(db, s);
    rows = await waitUntilAllPublished(db, n);
    expect(healthy.logs.some((l) => l.includes("took the relay lease"))).toBe(true);
    // No message was added: a dropped duplicate takes no stream sequence.
    expect(await streamState(s.stream)).toEqual({ messages: n, lastSeq: n });
    checkStream(await storedEvents(nc!, s.stream), rows, expected, s.subjectPrefix);

    // JetStream reports such a re-publish as a duplicate (the window covers it).
    const [first] = await storedEvents(nc!, s.stream);
    const ack = await nc!.jetstream().publish(first.subject, new Uint8Array([1]), {
      msgID: first.headers["Nats-Msg-Id"],
    });
    expect(ack.duplicate).toBe(true);
    expect(await streamState(s.stream)).toEqual({ messages: n, lastSeq: n });
  }, 60_000);
});
