/**
 * What reaches NATS JetStream (SPEC §5, issue 3 item 5): every mutation and
 * every cascade publishes exactly its events — subject, headers and decoded
 * payload — and nothing else; no-ops and failed writes publish nothing; each
 * group's events arrive in the order of its calls; the JSON payload format;
 * the typed subscriber and the WorkOS-style envelope.
 *
 * Runs against the machine's NATS (shared with other tests) on a stream and
 * subject prefix of its own, and a fresh MariaDB database.
 */
import { randomBytes } from "node:crypto";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeEvent,
  subscribeGroupEvents,
  type GroupEventSubscription,
  type ReceivedEvent,
} from "../../clients/src/events/subscriber.js";
import { toWorkOSEvent } from "../../clients/src/events/workos.js";
import { ErrorInfoSchema } from "../../clients/src/gen/google/rpc/error_details_pb.js";
import {
  EventCause,
  EventSchema,
  EventsService,
  type Event,
} from "../../clients/src/gen/groups/v1/events_pb.js";
import type { Group } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationMembershipStatus } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import {
  connectNats,
  deleteStream,
  SHARED_NATS_URL,
  storedEvents,
  uniqueStream,
  type StoredEvent,
} from "../support/nats.js";
import { startTestServer, type Clients, type TestServer } from "../support/server.js";

const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const EVENT_ID = new RegExp(`^event_${ULID}$`);

const WAIT_MS = 10_000;

// ---------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (ts: Timestamp | undefined) => timestampDate(ts!).getTime();

/** Polls `check` until it returns true; fails with `what` at the deadline. */
async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(25);
  }
}

async function expectError(call: Promise<unknown>, code: Code, reason?: string) {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, "the call should have failed").toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  expect({ code: Code[err.code], message: err.rawMessage }).toMatchObject({ code: Code[code] });
  if (reason !== undefined) {
    expect(err.findDetails(ErrorInfoSchema).map((i) => i.reason)).toEqual([reason]);
  }
  return err;
}

/** A header, whatever the case of its name. */
function header(m: StoredEvent, name: string): string | undefined {
  const key = Object.keys(m.headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : m.headers[key];
}

/** The group an event is about (group events: the group's id; member events: group_id). */
function groupOf(e: Event): string {
  if (e.data.case === "group") return e.data.value.group!.id;
  if (e.data.case === "member") return e.data.value.groupId;
  throw new Error(`event ${e.id} has no payload`);
}

const describeMessages = (ms: StoredEvent[]) =>
  ms.map((m) => `${m.event.type} ${groupOf(m.event)} ${memberOf(m.event) ?? ""}`.trim());

function memberOf(e: Event): string | undefined {
  return e.data.case === "member" ? e.data.value.organizationMembershipId : undefined;
}

// ---------------------------------------------------------------------------
// A server publishing to a stream of its own
// ---------------------------------------------------------------------------

interface Harness {
  t: TestServer;
  stream: string;
  subjectPrefix: string;
  c: Clients;
  events: Client<typeof EventsService>;
  /** Stream sequence of the last message a test has already looked at. */
  lastSeen: number;
}

async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const { stream, subjectPrefix } = uniqueStream();
  const t = await startTestServer(
    {
      NATS_URL: SHARED_NATS_URL,
      NATS_STREAM: stream,
      NATS_SUBJECT_PREFIX: subjectPrefix,
      RELAY_POLL_INTERVAL_MS: "50",
      ...env,
    },
    { reaper: { intervalMs: 200, chunkSize: 100, groupChunkSize: 2 } },
  );
  return {
    t,
    stream,
    subjectPrefix,
    c: t.clients("grpc"),
    events: createClient(EventsService, t.transport("grpc")),
    lastSeen: 0,
  };
}

let nc: NatsConnection;
let h: Harness;

beforeAll(async () => {
  nc = await connectNats();
  h = await startHarness();
});

afterAll(async () => {
  await h?.t.close();
  if (nc) {
    if (h) await deleteStream(nc, h.stream);
    await nc.close();
  }
});

async function streamMessageCount(x: Harness): Promise<number> {
  const jsm = await nc.jetstreamManager();
  try {
    return (await jsm.streams.info(x.stream)).state.messages;
  } catch {
    return 0; // the relay creates the stream on its first publish
  }
}

async function lastStreamSeq(x: Harness): Promise<number> {
  const jsm = await nc.jetstreamManager();
  try {
    return (await jsm.streams.info(x.stream)).state.last_seq;
  } catch {
    return 0;
  }
}

/** Events committed but not yet acknowledged by JetStream (the relay marks them after the ack). */
async function unpublished(x: Harness): Promise<number> {
  const [rows] = await x.t.db.sql.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM events WHERE published_at IS NULL",
  );
  return Number(rows[0].n);
}

/**
 * The messages stored since the previous call, once every committed event has
 * been acknowledged by the stream (so "nothing new" is a real answer) and at
 * least `atLeast` new messages are there (for events a background cascade writes).
 */
async function newMessages(x: Harness = h, atLeast = 0): Promise<StoredEvent[]> {
  await until(
    `${atLeast} new message(s) in ${x.stream} and an empty outbox`,
    async () => (await unpublished(x)) === 0 && (await lastStreamSeq(x)) - x.lastSeen >= atLeast,
  );
  if ((await lastStreamSeq(x)) === 0) return []; // nothing was ever published: no stream yet
  const all = await storedEvents(nc, x.stream);
  const fresh = all.filter((m) => m.seq > x.lastSeen);
  if (all.length > 0) x.lastSeen = Math.max(x.lastSeen, all[all.length - 1].seq);
  return fresh;
}

async function expectNothingNew(x: Harness = h) {
  expect(describeMessages(await newMessages(x))).toEqual([]);
}

/** Subject, headers and envelope fields every message must have. */
function expectMessage(
  m: StoredEvent,
  want: { type: string; organizationId: string; groupId: string; cause: EventCause },
  x: Harness = h,
  contentType = "application/protobuf",
) {
  const e = m.event;
  expect(m.subject).toBe(`${x.subjectPrefix}.${want.organizationId}.${want.type}`);
  expect(e.id).toMatch(EVENT_ID);
  expect(e.type).toBe(want.type);
  expect(e.organizationId).toBe(want.organizationId);
  expect(e.cause).toBe(want.cause);
  expect(e.sequence).toBeGreaterThan(0n);
  expect(e.createdAt).toBeDefined();
  expect(e.createdAt!.nanos % 1_000_000, "millisecond precision").toBe(0);
  expect(Math.abs(ms(e.createdAt) - Date.now())).toBeLessThan(5 * 60_000);
  expect(groupOf(e)).toBe(want.groupId);

  expect(header(m, "Nats-Msg-Id")).toBe(e.id);
  expect(header(m, "Content-Type")).toBe(contentType);
  expect(header(m, "ce-specversion")).toBe("1.0");
  expect(header(m, "ce-id")).toBe(e.id);
  expect(header(m, "ce-type")).toBe(want.type);
  expect(header(m, "ce-source")).toBeTruthy();
  expect(header(m, "ce-subject")).toBe(want.groupId);
  const ceTime = header(m, "ce-time");
  expect(ceTime).toBeTruthy();
  expect(new Date(ceTime!).toISOString()).toBe(ceTime);
  expect(new Date(ceTime!).getTime()).toBe(ms(e.createdAt));
}

function expectGroupPayload(
  m: StoredEvent,
  group: Group,
  previous?: { name?: string; description?: string },
) {
  const e = m.event;
  expect(e.data.case).toBe("group");
  if (e.data.case !== "group") return;
  expect(e.data.value.group).toEqual(group);
  if (previous === undefined) {
    expect(e.data.value.previous).toBeUndefined();
  } else {
    expect(e.data.value.previous).toBeDefined();
    expect({
      name: e.data.value.previous!.name,
      description: e.data.value.previous!.description,
    }).toEqual({ name: previous.name, description: previous.description });
  }
}

function expectMemberPayload(
  m: StoredEvent,
  want: { groupId: string; membershipId: string; organizationId: string; userId: string },
) {
  const e = m.event;
  expect(e.data.case).toBe("member");
  if (e.data.case !== "member") return;
  expect({
    groupId: e.data.value.groupId,
    organizationMembershipId: e.data.value.organizationMembershipId,
    organizationId: e.data.value.organizationId,
    userId: e.data.value.userId,
  }).toEqual({
    groupId: want.groupId,
    organizationMembershipId: want.membershipId,
    organizationId: want.organizationId,
    userId: want.userId,
  });
}

/** Every event ListEvents has, oldest first. */
async function listAll(x: Harness): Promise<Event[]> {
  const out: Event[] = [];
  let after = "";
  for (;;) {
    const page = await x.events.listEvents({ after, limit: 1000 });
    out.push(...page.events);
    after = page.listMetadata?.after ?? "";
    if (after === "") return out;
  }
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

interface Member {
  id: string;
  userId: string;
}

let orgA: string;
let orgB: string;
let a: Member[]; // memberships of org A
let b: Member; // a membership of org B

async function createMembers(x: Harness, organizationId: string, n: number, tag: string) {
  const out: Member[] = [];
  for (let i = 0; i < n; i++) {
    const userId = `user_${tag}_${i}_${randomBytes(3).toString("hex")}`;
    const { organizationMembership } = await x.c.orgs.createOrganizationMembership({
      organizationId,
      userId,
    });
    out.push({ id: organizationMembership!.id, userId });
  }
  return out;
}

async function createGroup(x: Harness, organizationId: string, name: string, description = "") {
  const { group } = await x.c.groups.createGroup({ organizationId, name, description });
  return group!;
}

async function getGroup(x: Harness, organizationId: string, groupId: string) {
  return (await x.c.groups.getGroup({ organizationId, groupId })).group!;
}

const API = EventCause.API;
const SYSTEM = EventCause.SYSTEM;

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

describe("each mutation publishes exactly its events", () => {
  beforeAll(async () => {
    orgA = (await h.c.orgs.createOrganization({ name: "Events A" })).organization!.id;
    orgB = (await h.c.orgs.createOrganization({ name: "Events B" })).organization!.id;
    a = await createMembers(h, orgA, 6, "a");
    [b] = await createMembers(h, orgB, 1, "b");
  });

  it("organizations and memberships publish nothing (only group.* events exist)", async () => {
    await h.c.orgs.updateOrganization({ organizationId: orgB, name: "Events B renamed" });
    await h.c.orgs.updateOrganizationMembership({
      organizationMembershipId: a[5].id,
      status: OrganizationMembershipStatus.INACTIVE,
    });
    await h.c.orgs.updateOrganizationMembership({
      organizationMembershipId: a[5].id,
      status: OrganizationMembershipStatus.ACTIVE,
    });
    await expectNothingNew();
  });

  it("CreateGroup → one group.created carrying the whole group", async () => {
    const group = await createGroup(h, orgA, "Engineering", "Builds things");
    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual([`group.created ${group.id}`]);
    expectMessage(msgs[0], {
      type: "group.created",
      organizationId: orgA,
      groupId: group.id,
      cause: API,
    });
    expectGroupPayload(msgs[0], group);
  });

  it("UpdateGroup → group.updated with the group after the change and the previous values", async () => {
    const group = await createGroup(h, orgA, "Finance");
    await newMessages();

    const renamed = (
      await h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, name: "Money" })
    ).group!;
    const described = (
      await h.c.groups.updateGroup({
        organizationId: orgA,
        groupId: group.id,
        description: "Pays people",
      })
    ).group!;
    const both = (
      await h.c.groups.updateGroup({
        organizationId: orgA,
        groupId: group.id,
        name: "Treasury",
        description: "Keeps money",
      })
    ).group!;
    const cleared = (
      await h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, description: "" })
    ).group!;

    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual(Array(4).fill(`group.updated ${group.id}`));
    for (const m of msgs) {
      expectMessage(m, {
        type: "group.updated",
        organizationId: orgA,
        groupId: group.id,
        cause: API,
      });
    }
    expectGroupPayload(msgs[0], renamed, { name: "Finance" });
    // "" = there was no description before.
    expectGroupPayload(msgs[1], described, { description: "" });
    expectGroupPayload(msgs[2], both, { name: "Money", description: "Pays people" });
    expectGroupPayload(msgs[3], cleared, { description: "Keeps money" });
  });

  it("UpdateGroup that changes nothing publishes nothing", async () => {
    const group = await createGroup(h, orgA, "Legal", "Reads contracts");
    await newMessages();
    await h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id });
    await h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, name: "Legal" });
    await h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, name: "  Legal  " });
    await h.c.groups.updateGroup({
      organizationId: orgA,
      groupId: group.id,
      name: "Legal",
      description: "Reads contracts",
      etag: group.etag,
    });
    const plain = await createGroup(h, orgA, "No description");
    await newMessages();
    await h.c.groups.updateGroup({ organizationId: orgA, groupId: plain.id, description: "" });
    await expectNothingNew();
  });

  it("AddGroupMember → group.member_added; adding an existing member publishes nothing", async () => {
    const group = await createGroup(h, orgA, "Design");
    await newMessages();
    const first = await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[0].id,
    });
    expect(first.added).toBe(true);
    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual([`group.member_added ${group.id} ${a[0].id}`]);
    expectMessage(msgs[0], {
      type: "group.member_added",
      organizationId: orgA,
      groupId: group.id,
      cause: API,
    });
    expectMemberPayload(msgs[0], {
      groupId: group.id,
      membershipId: a[0].id,
      organizationId: orgA,
      userId: a[0].userId,
    });

    const again = await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[0].id,
    });
    expect(again.added).toBe(false);
    await expectNothingNew();
  });

  it("RemoveGroupMember → group.member_removed; allow_missing on a non-member publishes nothing", async () => {
    const group = await createGroup(h, orgA, "Support");
    await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[1].id,
    });
    await newMessages();

    await h.c.groups.removeGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[1].id,
    });
    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual([`group.member_removed ${group.id} ${a[1].id}`]);
    expectMessage(msgs[0], {
      type: "group.member_removed",
      organizationId: orgA,
      groupId: group.id,
      cause: API,
    });
    expectMemberPayload(msgs[0], {
      groupId: group.id,
      membershipId: a[1].id,
      organizationId: orgA,
      userId: a[1].userId,
    });

    const res = await h.c.groups.removeGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[1].id,
      allowMissing: true,
    });
    expect(res.removed).toBe(false);
    await expectError(
      h.c.groups.removeGroupMember({
        organizationId: orgA,
        groupId: group.id,
        organizationMembershipId: a[1].id,
      }),
      Code.NotFound,
    );
    await expectNothingNew();
  });

  it("BatchAdd / BatchRemove → one event per member actually changed", async () => {
    const group = await createGroup(h, orgA, "Sales");
    await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[0].id,
    });
    await newMessages();

    const added = await h.c.groups.batchAddGroupMembers({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipIds: [a[0].id, a[1].id, a[2].id, a[3].id],
    });
    expect(added.results.map((r) => r.added)).toEqual([false, true, true, true]);
    let msgs = await newMessages();
    expect(msgs).toHaveLength(3);
    expect(msgs.map((m) => memberOf(m.event)).sort()).toEqual([a[1].id, a[2].id, a[3].id].sort());
    for (const m of msgs) {
      expectMessage(m, {
        type: "group.member_added",
        organizationId: orgA,
        groupId: group.id,
        cause: API,
      });
      const who = a.find((x) => x.id === memberOf(m.event))!;
      expectMemberPayload(m, {
        groupId: group.id,
        membershipId: who.id,
        organizationId: orgA,
        userId: who.userId,
      });
    }

    const removed = await h.c.groups.batchRemoveGroupMembers({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipIds: [a[1].id, a[4].id, a[2].id],
    });
    expect(removed.results.map((r) => r.removed)).toEqual([true, false, true]);
    msgs = await newMessages();
    expect(msgs).toHaveLength(2);
    expect(msgs.map((m) => memberOf(m.event)).sort()).toEqual([a[1].id, a[2].id].sort());
    for (const m of msgs) {
      expectMessage(m, {
        type: "group.member_removed",
        organizationId: orgA,
        groupId: group.id,
        cause: API,
      });
      const who = a.find((x) => x.id === memberOf(m.event))!;
      expectMemberPayload(m, {
        groupId: group.id,
        membershipId: who.id,
        organizationId: orgA,
        userId: who.userId,
      });
    }

    // Nothing left to change: no events.
    await h.c.groups.batchAddGroupMembers({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipIds: [a[0].id, a[3].id],
    });
    await h.c.groups.batchRemoveGroupMembers({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipIds: [a[1].id, a[2].id],
    });
    await expectNothingNew();
  });

  it("failed writes publish nothing (and change nothing)", async () => {
    const group = await createGroup(h, orgA, "Ops");
    await newMessages();
    const unknown = `om_${ulid()}`;

    await expectError(
      h.c.groups.batchAddGroupMembers({
        organizationId: orgA,
        groupId: group.id,
        organizationMembershipIds: [a[4].id, unknown],
      }),
      Code.NotFound,
    );
    await expectError(
      h.c.groups.addGroupMember({
        organizationId: orgA,
        groupId: group.id,
        organizationMembershipId: b.id,
      }),
      Code.FailedPrecondition,
    );
    await expectError(
      h.c.groups.batchAddGroupMembers({
        organizationId: orgA,
        groupId: group.id,
        organizationMembershipIds: [a[4].id, b.id],
      }),
      Code.FailedPrecondition,
    );
    await expectError(
      h.c.groups.updateGroup({
        organizationId: orgA,
        groupId: group.id,
        name: "Stale",
        etag: "v999",
      }),
      Code.Aborted,
    );
    await expectError(
      h.c.groups.deleteGroup({ organizationId: orgA, groupId: group.id, etag: "v999" }),
      Code.Aborted,
    );
    await expectError(
      h.c.groups.createGroup({ organizationId: `org_${ulid()}`, name: "Nowhere" }),
      Code.NotFound,
    );
    await expectError(
      h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, name: "   " }),
      Code.InvalidArgument,
    );
    await expectNothingNew();
    expect((await getGroup(h, orgA, group.id)).memberCount).toBe(0n);

    // A deleted group takes no more changes, and publishes nothing more.
    await h.c.groups.deleteGroup({ organizationId: orgA, groupId: group.id });
    expect(describeMessages(await newMessages())).toEqual([`group.deleted ${group.id}`]);
    await expectError(
      h.c.groups.addGroupMember({
        organizationId: orgA,
        groupId: group.id,
        organizationMembershipId: a[4].id,
      }),
      Code.NotFound,
    );
    await expectError(
      h.c.groups.updateGroup({ organizationId: orgA, groupId: group.id, name: "Ghost" }),
      Code.NotFound,
    );
    await expectError(
      h.c.groups.deleteGroup({ organizationId: orgA, groupId: group.id }),
      Code.NotFound,
    );
    await expectNothingNew();
  });

  it("DeleteGroup → one group.deleted carrying the group as it was, no per-member events", async () => {
    const group = await createGroup(h, orgA, "Temp", "Short-lived");
    await h.c.groups.batchAddGroupMembers({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipIds: [a[0].id, a[1].id, a[2].id],
    });
    await newMessages();
    const before = await getGroup(h, orgA, group.id);
    expect(before.memberCount).toBe(3n);

    await h.c.groups.deleteGroup({ organizationId: orgA, groupId: group.id });
    // The background reaper removes the links; give it the chance to (wrongly) emit.
    await until("the group's links are gone", async () => {
      const [rows] = await h.t.db.sql.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?",
        [group.id],
      );
      return Number(rows[0].n) === 0;
    });
    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual([`group.deleted ${group.id}`]);
    expectMessage(msgs[0], {
      type: "group.deleted",
      organizationId: orgA,
      groupId: group.id,
      cause: API,
    });
    expectGroupPayload(msgs[0], before);
  });

  it("CreateGroup replayed with the same request_id publishes once", async () => {
    const requestId = `req-${randomBytes(6).toString("hex")}`;
    const first = await h.c.groups.createGroup({ organizationId: orgA, name: "Once", requestId });
    const second = await h.c.groups.createGroup({ organizationId: orgA, name: "Once", requestId });
    expect(second.group!.id).toBe(first.group!.id);
    const msgs = await newMessages();
    expect(describeMessages(msgs)).toEqual([`group.created ${first.group!.id}`]);
    expectGroupPayload(msgs[0], first.group!);
    await h.c.groups.createGroup({ organizationId: orgA, name: "Once", requestId });
    await expectNothingNew();
  });
});

// ---------------------------------------------------------------------------
// Cascades
// ---------------------------------------------------------------------------

describe("cascades publish their events with cause SYSTEM", () => {
  it("DeleteOrganizationMembership → one group.member_removed per live group it left", async () => {
    const [m] = await createMembers(h, orgA, 1, "leaver");
    const g1 = await createGroup(h, orgA, "Cascade 1");
    const g2 = await createGroup(h, orgA, "Cascade 2");
    const g3 = await createGroup(h, orgA, "Cascade 3 (deleted first)");
    const g4 = await createGroup(h, orgA, "Cascade 4 (not a member)");
    for (const g of [g1, g2, g3]) {
      await h.c.groups.addGroupMember({
        organizationId: orgA,
        groupId: g.id,
        organizationMembershipId: m.id,
      });
    }
    await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: g4.id,
      organizationMembershipId: a[0].id,
    });
    await h.c.groups.deleteGroup({ organizationId: orgA, groupId: g3.id });
    await newMessages();

    await h.c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id });
    const msgs = await newMessages();
    expect(describeMessages(msgs).sort()).toEqual(
      [`group.member_removed ${g1.id} ${m.id}`, `group.member_removed ${g2.id} ${m.id}`].sort(),
    );
    for (const msg of msgs) {
      const groupId = groupOf(msg.event);
      expectMessage(msg, {
        type: "group.member_removed",
        organizationId: orgA,
        groupId,
        cause: SYSTEM,
      });
      expectMemberPayload(msg, {
        groupId,
        membershipId: m.id,
        organizationId: orgA,
        userId: m.userId,
      });
    }
  });

  it("DeleteOrganization → one group.deleted per remaining group, nothing else", async () => {
    const orgC = (await h.c.orgs.createOrganization({ name: "Doomed" })).organization!.id;
    const c = await createMembers(h, orgC, 2, "c");
    const h1 = await createGroup(h, orgC, "C1", "first");
    const h2 = await createGroup(h, orgC, "C2");
    const h3 = await createGroup(h, orgC, "C3 (deleted first)");
    const h4 = await createGroup(h, orgC, "C4");
    await h.c.groups.batchAddGroupMembers({
      organizationId: orgC,
      groupId: h1.id,
      organizationMembershipIds: [c[0].id, c[1].id],
    });
    await h.c.groups.addGroupMember({
      organizationId: orgC,
      groupId: h2.id,
      organizationMembershipId: c[1].id,
    });
    await h.c.groups.deleteGroup({ organizationId: orgC, groupId: h3.id });
    await newMessages();
    const before = new Map<string, Group>();
    for (const g of [h1, h2, h4]) before.set(g.id, await getGroup(h, orgC, g.id));

    await h.c.orgs.deleteOrganization({ organizationId: orgC });
    await until("the organization is fully removed", async () => {
      const [rows] = await h.t.db.sql.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM organizations WHERE id = ?",
        [orgC],
      );
      return Number(rows[0].n) === 0;
    });
    const msgs = await newMessages(h, 3);
    expect(describeMessages(msgs).sort()).toEqual(
      [`group.deleted ${h1.id}`, `group.deleted ${h2.id}`, `group.deleted ${h4.id}`].sort(),
    );
    for (const msg of msgs) {
      const groupId = groupOf(msg.event);
      expectMessage(msg, { type: "group.deleted", organizationId: orgC, groupId, cause: SYSTEM });
      // The whole group as it was.
      expectGroupPayload(msg, before.get(groupId)!);
    }
  });
});

// ---------------------------------------------------------------------------
// Order, uniqueness, and agreement with ListEvents
// ---------------------------------------------------------------------------

describe("order and uniqueness", () => {
  it("each group's events reach the stream in the order of its calls (groups changed in parallel)", async () => {
    type Step = { type: string; members: string[] };
    const m = a.slice(0, 4).map((x) => x.id);
    const chain = async (n: number) => {
      const steps: Step[] = [];
      const group = await createGroup(h, orgA, `Parallel ${n}`);
      const ref = { organizationId: orgA, groupId: group.id };
      steps.push({ type: "group.created", members: [] });
      await h.c.groups.addGroupMember({ ...ref, organizationMembershipId: m[0] });
      steps.push({ type: "group.member_added", members: [m[0]] });
      await h.c.groups.addGroupMember({ ...ref, organizationMembershipId: m[1] });
      steps.push({ type: "group.member_added", members: [m[1]] });
      await h.c.groups.updateGroup({ ...ref, name: `Parallel ${n} renamed` });
      steps.push({ type: "group.updated", members: [] });
      await h.c.groups.removeGroupMember({ ...ref, organizationMembershipId: m[0] });
      steps.push({ type: "group.member_removed", members: [m[0]] });
      await h.c.groups.batchAddGroupMembers({ ...ref, organizationMembershipIds: [m[2], m[3]] });
      steps.push({ type: "group.member_added", members: [m[2], m[3]] });
      await h.c.groups.updateGroup({ ...ref, description: `described ${n}` });
      steps.push({ type: "group.updated", members: [] });
      await h.c.groups.batchRemoveGroupMembers({
        ...ref,
        organizationMembershipIds: [m[1], m[2]],
      });
      steps.push({ type: "group.member_removed", members: [m[1], m[2]] });
      await h.c.groups.addGroupMember({ ...ref, organizationMembershipId: m[0] });
      steps.push({ type: "group.member_added", members: [m[0]] });
      await h.c.groups.deleteGroup(ref);
      steps.push({ type: "group.deleted", members: [] });
      return { groupId: group.id, steps };
    };
    const chains = await Promise.all([1, 2, 3, 4, 5].map(chain));
    const expectedCount = chains.reduce(
      (n, c) => n + c.steps.reduce((k, s) => k + Math.max(1, s.members.length), 0),
      0,
    );
    const msgs = await newMessages(h, expectedCount);
    expect(msgs).toHaveLength(expectedCount);

    for (const { groupId, steps } of chains) {
      const mine = msgs.filter((x) => groupOf(x.event) === groupId);
      const seqs = mine.map((x) => x.event.sequence);
      for (let i = 1; i < seqs.length; i++) {
        expect(seqs[i], `sequence of ${groupId} increases in stream order`).toBeGreaterThan(
          seqs[i - 1],
        );
      }
      // Walk the calls: each step takes as many messages as it changed members (or one).
      let i = 0;
      const got: string[] = [];
      const want: string[] = [];
      for (const step of steps) {
        const k = Math.max(1, step.members.length);
        const part = mine.slice(i, i + k);
        i += k;
        want.push(`${step.type} [${[...step.members].sort().join(",")}]`);
        const types = [...new Set(part.map((x) => x.event.type))];
        const members = part
          .map((x) => memberOf(x.event))
          .filter((x) => x !== undefined)
          .sort();
        got.push(`${types.join("|")} [${members.join(",")}]`);
      }
      expect(got, `order of ${groupId}`).toEqual(want);
      expect(i).toBe(mine.length);
    }
  });

  it("every stored message has its own Nats-Msg-Id, matching ListEvents one for one", async () => {
    await newMessages();
    const stored = await storedEvents(nc, h.stream);
    const ids = stored.map((m) => header(m, "Nats-Msg-Id"));
    expect(new Set(ids).size).toBe(ids.length);
    for (const m of stored) {
      expect(header(m, "Nats-Msg-Id")).toBe(m.event.id);
      expect(m.subject).toBe(`${h.subjectPrefix}.${m.event.organizationId}.${m.event.type}`);
    }
    const sequences = stored.map((m) => m.event.sequence);
    expect(new Set(sequences).size).toBe(sequences.length);

    const listed = await listAll(h);
    expect(stored.length).toBe(listed.length);
    const byId = new Map(stored.map((m) => [m.event.id, m.event]));
    for (const e of listed) expect(byId.get(e.id), `stream copy of ${e.id}`).toEqual(e);
  });
});

// ---------------------------------------------------------------------------
// Typed subscriber and WorkOS envelope
// ---------------------------------------------------------------------------

/** Resolves with `p`, or fails with `what` when it takes longer than `timeoutMs`. */
async function within<T>(p: Promise<T>, what: string, timeoutMs = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not done within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Consumes a subscription in the background (the documented `for await` loop). */
function consume(
  sub: GroupEventSubscription,
  onEvent: (r: ReceivedEvent) => void = (r) => r.ack(),
) {
  const got: ReceivedEvent[] = [];
  const done = (async () => {
    for await (const r of sub) {
      got.push(r);
      onEvent(r);
    }
  })();
  done.catch(() => undefined);
  return {
    got,
    done,
    async atLeast(n: number) {
      await until(
        `${n} event(s) from the subscription (have ${got.length})`,
        async () => got.length >= n,
      );
      return got;
    },
  };
}

describe("typed subscriber", () => {
  const durable = `test_${randomBytes(5).toString("hex")}`;
  const subs: GroupEventSubscription[] = [];

  afterAll(() => {
    // Not awaited: a subscription that is not being iterated may never finish stopping
    // (see the stop() test); closing the connection at the end ends them all.
    for (const s of subs) void s.stop().catch(() => undefined);
  });

  it("receives every event in stream order, decoded; acked events are not delivered again", async () => {
    await newMessages();
    const stored = await storedEvents(nc, h.stream);
    expect(stored.length).toBeGreaterThan(20);

    const sub = await subscribeGroupEvents(nc, {
      durable,
      stream: h.stream,
      subjectPrefix: h.subjectPrefix,
    });
    subs.push(sub);
    const first = consume(sub);
    const got = await first.atLeast(stored.length);
    expect(got.map((r) => r.event.id)).toEqual(stored.map((m) => m.event.id));
    got.forEach((r, i) => {
      expect(r.event).toEqual(stored[i].event);
      expect(r.subject).toBe(stored[i].subject);
      expect(r.redelivered).toBe(false);
    });
    await nc.flush();
    const jsm = await nc.jetstreamManager();
    const lastSeq = stored[stored.length - 1].seq;
    await until("the consumer has every ack", async () => {
      const info = await jsm.consumers.info(h.stream, durable);
      return info.num_ack_pending === 0 && info.ack_floor.stream_seq === lastSeq;
    });
    await within(sub.stop(), "stop() while a for-await loop runs");
    await within(first.done, "the for-await loop ends after stop()");

    // A new subscription of the same durable starts after what was acked.
    const sub2 = await subscribeGroupEvents(nc, {
      durable,
      stream: h.stream,
      subjectPrefix: h.subjectPrefix,
    });
    subs.push(sub2);
    let nakked = false;
    const second = consume(sub2, (r) => {
      // nak the first delivery: it must come again, flagged as redelivered.
      if (!nakked) {
        nakked = true;
        r.nak();
      } else r.ack();
    });
    const group = await createGroup(h, orgA, "After the acks");
    const [fresh, again] = await second.atLeast(2);
    expect(fresh.event.type).toBe("group.created");
    expect(groupOf(fresh.event)).toBe(group.id);
    expect(fresh.redelivered).toBe(false);
    expect(again.event.id).toBe(fresh.event.id);
    expect(again.redelivered).toBe(true);
    await nc.flush();
    await until("the consumer has the last ack", async () => {
      const info = await jsm.consumers.info(h.stream, durable);
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
    expect(second.got.map((r) => r.event.id)).toEqual([fresh.event.id, fresh.event.id]);
    await within(sub2.stop(), "stop() while a for-await loop runs");
    await newMessages();
  });

  it("filterSubjects narrows what a durable receives", async () => {
    const stored = (await storedEvents(nc, h.stream)).filter(
      (m) => m.event.type === "group.member_added",
    );
    expect(stored.length).toBeGreaterThan(0);
    const sub = await subscribeGroupEvents(nc, {
      durable: `${durable}_added`,
      stream: h.stream,
      subjectPrefix: h.subjectPrefix,
      filterSubjects: [`${h.subjectPrefix}.*.group.member_added`],
    });
    subs.push(sub);
    const c = consume(sub);
    await c.atLeast(stored.length);
    expect(c.got.map((r) => r.event.id)).toEqual(stored.map((m) => m.event.id));
    // A later event of another type does not reach it; the next member_added does.
    const group = await createGroup(h, orgA, "Filter check");
    await h.c.groups.addGroupMember({
      organizationId: orgA,
      groupId: group.id,
      organizationMembershipId: a[0].id,
    });
    await c.atLeast(stored.length + 1);
    const next = c.got[stored.length];
    expect(next.event.type).toBe("group.member_added");
    expect(groupOf(next.event)).toBe(group.id);
    await within(sub.stop(), "stop() while a for-await loop runs");
    await newMessages();
  });

  it("stop() finishes after a for-await loop was left with break", async () => {
    const sub = await subscribeGroupEvents(nc, {
      durable: `${durable}_break`,
      stream: h.stream,
      subjectPrefix: h.subjectPrefix,
    });
    subs.push(sub);
    let n = 0;
    for await (const r of sub) {
      r.ack();
      if (++n === 3) break;
    }
    await within(sub.stop(), "stop() after break");
  });

  it("toWorkOSEvent renders the WorkOS-style envelope for every type", async () => {
    const stored = await storedEvents(nc, h.stream);
    const seen = new Set<string>();
    for (const { event } of stored) {
      const w = toWorkOSEvent(event);
      // Plain JSON (no bigint, no class instances).
      expect(JSON.parse(JSON.stringify(w))).toEqual(w);
      expect(w).toMatchObject({
        object: "event",
        id: event.id,
        event: event.type,
        created_at: timestampDate(event.createdAt!).toISOString(),
      });
      seen.add(event.type);
      if (event.data.case === "group") {
        const g = event.data.value.group!;
        expect(w.data).toMatchObject({
          object: "group",
          id: g.id,
          organization_id: g.organizationId,
          name: g.name,
          description: g.description === "" ? null : g.description,
          created_at: timestampDate(g.createdAt!).toISOString(),
          updated_at: timestampDate(g.updatedAt!).toISOString(),
        });
        if (event.type === "group.updated") {
          const p = event.data.value.previous!;
          const attrs: Record<string, unknown> = {};
          if (p.name !== undefined) attrs.name = p.name;
          if (p.description !== undefined) attrs.description = p.description || null;
          expect(w.data.previous_attributes).toEqual(attrs);
        } else {
          expect(w.data.previous_attributes).toBeUndefined();
        }
      } else if (event.data.case === "member") {
        const m = event.data.value;
        expect(w.data).toMatchObject({
          group_id: m.groupId,
          organization_membership_id: m.organizationMembershipId,
          organization_id: m.organizationId,
          user_id: m.userId,
        });
      }
    }
    expect([...seen].sort()).toEqual([
      "group.created",
      "group.deleted",
      "group.member_added",
      "group.member_removed",
      "group.updated",
    ]);
  });
});

describe("the stream", () => {
  it("is created with the configured subjects, 30-day retention and a duplicate window", async () => {
    const jsm = await nc.jetstreamManager();
    const { config } = await jsm.streams.info(h.stream);
    expect(config.name).toBe(h.stream);
    expect(config.subjects).toEqual([`${h.subjectPrefix}.>`]);
    expect(config.max_age).toBe(30 * 24 * 3600 * 1e9);
    // Longer than the relay's largest retry backoff (seconds).
    expect(config.duplicate_window).toBeGreaterThanOrEqual(30 * 1e9);
  });

  it("drops a re-publish of an event id (what a relay crash after the ack would do)", async () => {
    await newMessages();
    const stored = await storedEvents(nc, h.stream);
    const last = stored[stored.length - 1];
    const jsm = await nc.jetstreamManager();
    const raw = await jsm.streams.getMessage(h.stream, { seq: last.seq });
    const ack = await nc.jetstream().publish(last.subject, raw.data, {
      msgID: last.event.id,
      headers: raw.header,
    });
    expect(ack.duplicate).toBe(true);
    expect(await streamMessageCount(h)).toBe(stored.length);
  });
});

// ---------------------------------------------------------------------------
// JSON payloads
// ---------------------------------------------------------------------------

describe("EVENTS_PAYLOAD_FORMAT=json", () => {
  let j: Harness;

  beforeAll(async () => {
    j = await startHarness({ EVENTS_PAYLOAD_FORMAT: "json" });
  });

  afterAll(async () => {
    await j?.t.close();
    if (j) await deleteStream(nc, j.stream);
  });

  it("publishes canonical protobuf JSON with Content-Type application/json", async () => {
    const org = (await j.c.orgs.createOrganization({ name: "Json" })).organization!.id;
    const [m] = await createMembers(j, org, 1, "json");
    const group = await createGroup(j, org, "Json group", "with a description");
    await j.c.groups.addGroupMember({
      organizationId: org,
      groupId: group.id,
      organizationMembershipId: m.id,
    });
    const updated = (
      await j.c.groups.updateGroup({ organizationId: org, groupId: group.id, name: "Renamed" })
    ).group!;
    const msgs = await newMessages(j, 3);
    expect(describeMessages(msgs)).toEqual([
      `group.created ${group.id}`,
      `group.member_added ${group.id} ${m.id}`,
      `group.updated ${group.id}`,
    ]);
    const types = ["group.created", "group.member_added", "group.updated"];
    msgs.forEach((msg, i) =>
      expectMessage(
        msg,
        { type: types[i], organizationId: org, groupId: group.id, cause: API },
        j,
        "application/json",
      ),
    );
    expectGroupPayload(msgs[0], group);
    expectMemberPayload(msgs[1], {
      groupId: group.id,
      membershipId: m.id,
      organizationId: org,
      userId: m.userId,
    });
    expectGroupPayload(msgs[2], updated, { name: "Json group" });

    // The raw bodies are JSON, and decodeEvent gives the same events ListEvents returns.
    const jsm = await nc.jetstreamManager();
    const listed = await listAll(j);
    for (const msg of msgs) {
      const raw = await jsm.streams.getMessage(j.stream, { seq: msg.seq });
      const json = JSON.parse(new TextDecoder().decode(raw.data)) as Record<string, unknown>;
      expect(json).toMatchObject({ id: msg.event.id, type: msg.event.type, organizationId: org });
      const decoded = decodeEvent(raw.data, "application/json");
      expect(decoded).toEqual(listed.find((e) => e.id === msg.event.id));
      expect(JSON.parse(toJsonString(EventSchema, decoded))).toEqual(json);
    }
  });
});
