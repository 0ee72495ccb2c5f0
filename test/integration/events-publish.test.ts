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
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
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
import {
  EventCause,
  EventSchema,
  EventsService,
} from "../../clients/src/gen/groups/v1/events_pb.js";
import type { Group } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationMembershipStatus } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { expectError, expectMillisecondTimestamp, ms } from "../support/assertions.js";
import { unpublishedCount } from "../support/database.js";
import {
  closeEventsServer,
  createMembers,
  EVENT_ID,
  expectWorkOSEvent,
  groupOf,
  listAllEvents,
  memberOf,
  startEventsServer,
  streamState,
  type EventsServer,
  type Member,
} from "../support/events.js";
import { connectNats, SHARED_NATS_URL, storedEvents, type StoredEvent } from "../support/nats.js";
import type { Clients } from "../support/server.js";
import { until } from "../support/wait.js";

// ---------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------

/** A header, whatever the case of its name. */
function header(m: StoredEvent, name: string): string | undefined {
  const key = Object.keys(m.headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : m.headers[key];
}

const describeMessages = (ms: StoredEvent[]) =>
  ms.map((m) => `${m.event.type} ${groupOf(m.event)} ${memberOf(m.event) ?? ""}`.trim());

// ---------------------------------------------------------------------------
// A server publishing to a stream of its own
// ---------------------------------------------------------------------------

interface Harness extends EventsServer {
  c: Clients;
  events: Client<typeof EventsService>;
  /** Stream sequence of the last message a test has already looked at. */
  lastSeen: number;
}

async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const x = await startEventsServer(env, { chunkSize: 100, groupChunkSize: 2 });
  return {
    ...x,
    c: x.t.clients("grpc"),
    events: createClient(EventsService, x.t.transport("grpc")),
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
  await closeEventsServer(h, nc);
  await nc?.close();
});

/** The stream's last sequence (0 while it has no messages, or before it exists). */
const lastStreamSeq = async (x: Harness) => (await streamState(nc, x.stream)).lastSeq;

/**
 * The messages stored since the previous call, once every committed event has
 * been acknowledged by the stream (so "nothing new" is a real answer) and at
 * least `atLeast` new messages are there (for events a background cascade writes).
 */
async function newMessages(x: Harness = h, atLeast = 0): Promise<StoredEvent[]> {
  await until(
    `${atLeast} new message(s) in ${x.stream} and an empty outbox`,
    async () =>
      (await unpublishedCount(x.t.db)) === 0 && (await lastStreamSeq(x)) - x.lastSeen >= atLeast,
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
  expectMillisecondTimestamp(e.createdAt);
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

/** A member event: its envelope (as `expectMessage` checks it) and its payload, about `member`. */
function expectMemberMessage(
  m: StoredEvent,
  want: {
    type: string;
    organizationId: string;
    groupId: string;
    cause: EventCause;
    member: Member;
  },
) {
  const { member, ...envelope } = want;
  expectMessage(m, envelope);
  expectMemberPayload(m, {
    groupId: want.groupId,
    membershipId: member.id,
    organizationId: want.organizationId,
    userId: member.userId,
  });
}

/** The only new message: `type` (cause API) about `group` of org A, carrying it (no previous values). */
async function expectOneGroupMessage(type: string, group: Group) {
  const msgs = await newMessages();
  expect(describeMessages(msgs)).toEqual([`${type} ${group.id}`]);
  expectMessage(msgs[0], { type, organizationId: orgA, groupId: group.id, cause: API });
  expectGroupPayload(msgs[0], group);
}

/** The only new message: `type` (cause API) about `member` in `groupId` of org A. */
async function expectOneMemberMessage(type: string, groupId: string, member: Member) {
  const msgs = await newMessages();
  expect(describeMessages(msgs)).toEqual([`${type} ${groupId} ${member.id}`]);
  expectMemberMessage(msgs[0], { type, organizationId: orgA, groupId, cause: API, member });
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

let orgA: string;
let orgB: string;
let a: Member[]; // memberships of org A
let b: Member; // a membership of org B

async function createGroup(x: Harness, organizationId: string, name: string, description = "") {
  const { group } = await x.c.groups.createGroup({ organizationId, name, description });
  return group!;
}

async function getGroup(x: Harness, organizationId: string, groupId: string) {
  return (await x.c.groups.getGroup({ organizationId, groupId })).group!;
}

/** A membership's place in a group, as the member RPCs name it. */
const memberRef = (groupId: string, m: Member, organizationId = orgA) => ({
  organizationId,
  groupId,
  organizationMembershipId: m.id,
});

const API = EventCause.API;
const SYSTEM = EventCause.SYSTEM;

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

describe("each mutation publishes exactly its events", () => {
  beforeAll(async () => {
    orgA = (await h.c.orgs.createOrganization({ name: "Events A" })).organization!.id;
    orgB = (await h.c.orgs.createOrganization({ name: "Events B" })).organization!.id;
    a = await createMembers(h.c, orgA, 6, "a");
    [b] = await createMembers(h.c, orgB, 1, "b");
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
    await expectOneGroupMessage("group.created", group);
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
    const first = await h.c.groups.addGroupMember(memberRef(group.id, a[0]));
    expect(first.added).toBe(true);
    await expectOneMemberMessage("group.member_added", group.id, a[0]);

    const again = await h.c.groups.addGroupMember(memberRef(group.id, a[0]));
    expect(again.added).toBe(false);
    await expectNothingNew();
  });

  it("RemoveGroupMember → group.member_removed; allow_missing on a non-member publishes nothing", async () => {
    const group = await createGroup(h, orgA, "Support");
    await h.c.groups.addGroupMember(memberRef(group.id, a[1]));
    await newMessages();

    await h.c.groups.removeGroupMember(memberRef(group.id, a[1]));
    await expectOneMemberMessage("group.member_removed", group.id, a[1]);

    const res = await h.c.groups.removeGroupMember({
      ...memberRef(group.id, a[1]),
      allowMissing: true,
    });
    expect(res.removed).toBe(false);
    await expectError(h.c.groups.removeGroupMember(memberRef(group.id, a[1])), Code.NotFound);
    await expectNothingNew();
  });

  it("BatchAdd / BatchRemove → one event per member actually changed", async () => {
    const group = await createGroup(h, orgA, "Sales");
    await h.c.groups.addGroupMember(memberRef(group.id, a[0]));
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
      expectMemberMessage(m, {
        type: "group.member_added",
        organizationId: orgA,
        groupId: group.id,
        cause: API,
        member: a.find((x) => x.id === memberOf(m.event))!,
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
      expectMemberMessage(m, {
        type: "group.member_removed",
        organizationId: orgA,
        groupId: group.id,
        cause: API,
        member: a.find((x) => x.id === memberOf(m.event))!,
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
    await expectError(h.c.groups.addGroupMember(memberRef(group.id, b)), Code.FailedPrecondition);
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
    await expectError(h.c.groups.addGroupMember(memberRef(group.id, a[4])), Code.NotFound);
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
    // The group as it was.
    await expectOneGroupMessage("group.deleted", before);
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
    const [m] = await createMembers(h.c, orgA, 1, "leaver");
    const g1 = await createGroup(h, orgA, "Cascade 1");
    const g2 = await createGroup(h, orgA, "Cascade 2");
    const g3 = await createGroup(h, orgA, "Cascade 3 (deleted first)");
    const g4 = await createGroup(h, orgA, "Cascade 4 (not a member)");
    for (const g of [g1, g2, g3]) {
      await h.c.groups.addGroupMember(memberRef(g.id, m));
    }
    await h.c.groups.addGroupMember(memberRef(g4.id, a[0]));
    await h.c.groups.deleteGroup({ organizationId: orgA, groupId: g3.id });
    await newMessages();

    await h.c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id });
    const msgs = await newMessages();
    expect(describeMessages(msgs).sort()).toEqual(
      [`group.member_removed ${g1.id} ${m.id}`, `group.member_removed ${g2.id} ${m.id}`].sort(),
    );
    for (const msg of msgs) {
      expectMemberMessage(msg, {
        type: "group.member_removed",
        organizationId: orgA,
        groupId: groupOf(msg.event),
        cause: SYSTEM,
        member: m,
      });
    }
  });

  it("DeleteOrganization → one group.deleted per remaining group, nothing else", async () => {
    const orgC = (await h.c.orgs.createOrganization({ name: "Doomed" })).organization!.id;
    const c = await createMembers(h.c, orgC, 2, "c");
    const h1 = await createGroup(h, orgC, "C1", "first");
    const h2 = await createGroup(h, orgC, "C2");
    const h3 = await createGroup(h, orgC, "C3 (deleted first)");
    const h4 = await createGroup(h, orgC, "C4");
    await h.c.groups.batchAddGroupMembers({
      organizationId: orgC,
      groupId: h1.id,
      organizationMembershipIds: [c[0].id, c[1].id],
    });
    await h.c.groups.addGroupMember(memberRef(h2.id, c[1], orgC));
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

  it("a message stored by someone else breaks the relay's pipeline for one round only: every event still arrives once, in order", async () => {
    // A stream of its own: the foreign message must not reach the other tests' readers.
    const x = await startHarness();
    try {
      const org = (await x.c.orgs.createOrganization({ name: "Pipeline" })).organization!.id;
      const members = await createMembers(x.c, org, 8, "pipeline");
      const group = await createGroup(x, org, "Pipeline");
      const ref = { organizationId: org, groupId: group.id };
      await newMessages(x, 1);
      // Stored, then deleted: the stream's last message id is no longer the relay's last event.
      const js = nc.jetstream();
      const foreign = await js.publish(`${x.subjectPrefix}.foreign`, new Uint8Array([1]), {
        msgID: `foreign-${Date.now()}`,
      });
      await (await nc.jetstreamManager()).streams.deleteMessage(x.stream, foreign.seq);

      const ids = members.map((m) => m.id);
      for (const id of ids.slice(0, 3))
        await x.c.groups.addGroupMember({ ...ref, organizationMembershipId: id });
      await x.c.groups.batchAddGroupMembers({ ...ref, organizationMembershipIds: ids.slice(3) });
      await x.c.groups.updateGroup({ ...ref, name: "Pipeline renamed" });

      const msgs = await newMessages(x, ids.length + 1);
      expect(describeMessages(msgs)).toEqual([
        ...ids.map((id) => `group.member_added ${group.id} ${id}`),
        `group.updated ${group.id}`,
      ]);
      const sequences = msgs.map((m) => m.event.sequence);
      expect(sequences).toEqual([...sequences].sort((p, q) => (p < q ? -1 : 1)));
      expect(new Set(msgs.map((m) => m.event.id)).size).toBe(msgs.length);
    } finally {
      await closeEventsServer(x, nc);
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

    const listed = await listAllEvents(h.events);
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
    await h.c.groups.addGroupMember(memberRef(group.id, a[0]));
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
      // Plain JSON, the envelope, and what names the group or the membership.
      const w = expectWorkOSEvent(event);
      seen.add(event.type);
      if (event.data.case === "group") {
        const g = event.data.value.group!;
        expect(w.data).toMatchObject({
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

  it("exists once the service starts, before any event: a consumer can subscribe to a fresh deployment", async () => {
    const x = await startHarness();
    try {
      const jsm = await nc.jetstreamManager();
      await until("the service creates its stream", async () =>
        jsm.streams.info(x.stream).then(
          () => true,
          () => false,
        ),
      );
      expect((await streamState(nc, x.stream)).messages).toBe(0);
      const sub = await subscribeGroupEvents(nc, {
        durable: `fresh_${randomBytes(5).toString("hex")}`,
        stream: x.stream,
        subjectPrefix: x.subjectPrefix,
      });
      const first = consume(sub);
      const org = (await x.c.orgs.createOrganization({ name: "Fresh" })).organization!.id;
      const group = await createGroup(x, org, "First");
      const [got] = await first.atLeast(1);
      expect(got.event.type).toBe("group.created");
      expect(groupOf(got.event)).toBe(group.id);
      await within(sub.stop(), "stop() while a for-await loop runs");
    } finally {
      await closeEventsServer(x, nc);
    }
  });

  it("is reached through a NATS_URL listing several servers, one of them down", async () => {
    // Port 1 refuses connections; nats.js tries the servers in random order. Read
    // as one address, this list would name only its last server: the one that is down.
    const x = await startHarness({ NATS_URL: `${SHARED_NATS_URL}, nats://127.0.0.1:1` });
    try {
      const org = (await x.c.orgs.createOrganization({ name: "Listed" })).organization!.id;
      const group = await createGroup(x, org, "Reached");
      await until("the event reaches the stream", async () => (await lastStreamSeq(x)) >= 1);
      const [stored] = await storedEvents(nc, x.stream);
      expect(groupOf(stored.event)).toBe(group.id);
    } finally {
      await closeEventsServer(x, nc);
    }
  });

  it("records the watermark of its last round when the relay stops, however long the poll interval", async () => {
    // A long poll: only the round that published the event can have recorded it.
    const x = await startHarness({ RELAY_POLL_INTERVAL_MS: "60000" });
    try {
      const org = (await x.c.orgs.createOrganization({ name: "Quiet" })).organization!.id;
      await createGroup(x, org, "Last");
      await until("the event reaches the stream", async () => (await lastStreamSeq(x)) >= 1);
      await x.t.server.relay.stop();
      expect(await unpublishedCount(x.t.db)).toBe(0);
    } finally {
      await closeEventsServer(x, nc);
    }
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
    expect((await streamState(nc, h.stream)).messages).toBe(stored.length);
  });

  it("deleted while NATS stays up: the relay creates it again and publishes what followed", async () => {
    const x = await startHarness();
    try {
      const org = (await x.c.orgs.createOrganization({ name: "Deleted stream" })).organization!.id;
      await createGroup(x, org, "Before");
      await newMessages(x, 1);
      await (await nc.jetstreamManager()).streams.delete(x.stream);
      x.lastSeen = 0;

      const after = await createGroup(x, org, "After");
      const msgs = await newMessages(x, 1);
      expect(describeMessages(msgs)).toEqual([`group.created ${after.id}`]);
      const { config } = await (await nc.jetstreamManager()).streams.info(x.stream);
      expect(config.subjects).toEqual([`${x.subjectPrefix}.>`]);
    } finally {
      await closeEventsServer(x, nc);
    }
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
    await closeEventsServer(j, nc);
  });

  it("publishes canonical protobuf JSON with Content-Type application/json", async () => {
    const org = (await j.c.orgs.createOrganization({ name: "Json" })).organization!.id;
    const [m] = await createMembers(j.c, org, 1, "json");
    const group = await createGroup(j, org, "Json group", "with a description");
    await j.c.groups.addGroupMember(memberRef(group.id, m, org));
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
    const listed = await listAllEvents(j.events);
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
