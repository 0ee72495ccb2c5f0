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
import type { RowDataPacket } from "mysql2/promise";
import { describe, expect, it } from "vitest";
import type { TestDatabase } from "../support/database.js";
import { streamState } from "../support/events.js";
import {
  connTo,
  eventRows,
  expectGroupsInCommitOrder,
  expectOneMessagePerRow,
  groupKey,
  memberKey,
  relayLockName,
  tookLease,
  useFaultRig,
  waitUntilPublished,
  type EventRow,
} from "../support/faults.js";
import { storedEvents, uniqueStream, type StoredEvent } from "../support/nats.js";
import type { ServerProcess } from "../support/process.js";
import type { Clients } from "../support/server.js";
import { waitFor } from "../support/wait.js";

const rig = useFaultRig();

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async function exitWithin(p: ServerProcess, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"still running">((resolve) => {
    timer = setTimeout(() => resolve("still running"), timeoutMs);
  });
  const result = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  return result;
}

/** Messages in the stream (0 when the relay never got to create it). */
const stateOf = async (stream: string) => streamState(await rig.nc(), stream);

const storedIn = async (stream: string) => storedEvents(await rig.nc(), stream);

/** Takes the relay lease on the test's own connection, so no server process can relay. */
async function holdRelayLease(db: TestDatabase): Promise<void> {
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT GET_LOCK(?, 10) AS got", [
    relayLockName(db),
  ]);
  expect(Number(rows[0].got), "the test holds the relay lease").toBe(1);
}

async function releaseRelayLease(db: TestDatabase): Promise<void> {
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT RELEASE_LOCK(?) AS released", [
    relayLockName(db),
  ]);
  expect(Number(rows[0].released)).toBe(1);
}

/**
 * One client, one call after another: groups created, members added (one by
 * one and in batches), removed, groups renamed, a membership deleted (a
 * system cascade), a group deleted, and some idempotent no-ops. Returns, per
 * group, the expected events transaction by transaction, in commit order.
 */
async function scriptedWrites(c: Clients, tag: string): Promise<Map<string, string[][]>> {
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
  const rowById = expectOneMessagePerRow(stored, rows);
  for (const s of stored) {
    const row = rowById.get(s.headers["Nats-Msg-Id"])!;
    expect(s.event.id).toBe(row.id);
    expect(s.headers["ce-id"]).toBe(row.id);
    expect(String(s.event.sequence)).toBe(row.sequence);
    expect(s.subject).toBe(`${subjectPrefix}.${row.organization_id}.${row.type}`);
  }
  expectGroupsInCommitOrder(stored, rowById, expected);
}

/**
 * A fresh database and stream, and a process with `fault` taking the scripted
 * writes (tagged `tag`) while the test holds the relay lease: when the test
 * lets go, that process becomes the leader with the whole batch waiting.
 */
async function backlogForFaulty(fault: string, tag: string) {
  const db = await rig.database();
  const s = uniqueStream();
  await holdRelayLease(db);
  const faulty = await rig.startServer(db, s, { fault });
  const expected = await scriptedWrites(connTo(faulty), tag);
  return { db, s, faulty, expected, n: expectedCount(expected) };
}

// ---------------------------------------------------------------------------

describe("the relay crashes", () => {
  it("between commit and publish: the events are published after the restart, once", async () => {
    const { db, s, faulty, expected, n } = await backlogForFaulty("crash-before-publish", "a");

    // Every write committed its events; nobody could relay them yet.
    let rows = await eventRows(db);
    expect(rows.length).toBe(n);
    expect(rows.filter((r) => r.published || r.sequence !== null)).toEqual([]);
    expect(tookLease(faulty)).toBe(false);

    // Let go: the faulty process takes the lease and dies before publishing.
    await releaseRelayLease(db);
    const exit = await exitWithin(faulty, 20_000);
    expect(exit, "the process crashed").toEqual({ code: null, signal: "SIGKILL" });
    expect(faulty.logs.some((l) => l.includes("crashing the relay before publish"))).toBe(true);
    rows = await eventRows(db);
    expect(rows.length).toBe(n);
    expect(
      rows.filter((r) => r.published),
      "nothing marked published",
    ).toEqual([]);
    expect((await stateOf(s.stream)).messages, "nothing reached the stream").toBe(0);

    // A new process without the fault, on the same database.
    const healthy = await rig.startServer(db, s);
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

    rows = await waitUntilPublished(db, n + 1);
    const stored = await storedIn(s.stream);
    checkStream(stored, rows, expected, s.subjectPrefix);
    expect(tookLease(healthy)).toBe(true);
  }, 60_000);

  it("between commit and publish while the writes go on: every acknowledged write's event is published after the restart", async () => {
    const db = await rig.database();
    const s = uniqueStream();

    // The faulty process is the leader from the start; its first batch kills it.
    const faulty = await rig.startServer(db, s, { fault: "crash-before-publish" });
    await waitFor(
      "the faulty process to take the relay lease",
      async () => (tookLease(faulty) ? true : undefined),
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
    expect(rows.filter((r) => r.published)).toEqual([]);
    expect((await stateOf(s.stream)).messages).toBe(0);

    // After the restart, the unanswered call is retried with its request_id:
    // it either finds the group it created or creates it, one event either way.
    const healthy = await rig.startServer(db, s);
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
    rows = await waitUntilPublished(db, acked.length + 1);
    checkStream(await storedIn(s.stream), rows, expected, s.subjectPrefix);
  }, 60_000);

  it("after the ack, before marking: JetStream drops the re-publish, the stream keeps one copy", async () => {
    const { db, s, faulty, expected, n } = await backlogForFaulty("crash-after-ack", "b");
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
    expect(rows.filter((r) => r.published)).toEqual([]);
    expect(rows.filter((r) => r.sequence === null)).toEqual([]);
    const afterCrash = await stateOf(s.stream);
    expect(afterCrash).toEqual({ messages: n, lastSeq: n });
    checkStream(await storedIn(s.stream), rows, expected, s.subjectPrefix);

    // A new process publishes them all again; JetStream drops every copy.
    const healthy = await rig.startServer(db, s);
    rows = await waitUntilPublished(db, n);
    expect(tookLease(healthy)).toBe(true);
    // No message was added: a dropped duplicate takes no stream sequence.
    expect(await stateOf(s.stream)).toEqual({ messages: n, lastSeq: n });
    checkStream(await storedIn(s.stream), rows, expected, s.subjectPrefix);

    // JetStream reports such a re-publish as a duplicate (the window covers it).
    const [first] = await storedIn(s.stream);
    const ack = await (await rig.nc()).jetstream().publish(first.subject, new Uint8Array([1]), {
      msgID: first.headers["Nats-Msg-Id"],
    });
    expect(ack.duplicate).toBe(true);
    expect(await stateOf(s.stream)).toEqual({ messages: n, lastSeq: n });
  }, 60_000);
});
