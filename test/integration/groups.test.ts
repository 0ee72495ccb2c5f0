import { Code } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import type { Group } from "../../clients/src/gen/groups/v1/groups_pb.js";
import {
  OrganizationMembershipStatus,
  type OrganizationMembership,
} from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { DOORS, startTestServer, type Clients, type TestServer } from "../support/server.js";
import { badFields, expectError, expectMillisecondTimestamp, ms } from "../support/assertions.js";
import { lastOutboxSeq, outboxAfter, type OutboxRow } from "../support/outbox.js";
import { MEMBER_COUNT } from "../../server/src/store/pagination.js";

const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const GROUP_ID = new RegExp(`^group_${ULID}$`);
const EVENT_ID = new RegExp(`^event_${ULID}$`);

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async function count(sql: string, params: unknown[]): Promise<number> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(sql, params);
  return Number(rows[0].n);
}

const groupRows = (organizationId: string) =>
  count("SELECT COUNT(*) AS n FROM org_groups WHERE organization_id = ?", [organizationId]);
const linkRows = (groupId: string) =>
  count("SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?", [groupId]);
const linkRow = (groupId: string, membershipId: string) =>
  count(
    "SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ? AND organization_membership_id = ?",
    [groupId, membershipId],
  );

async function storedGroup(groupId: string): Promise<RowDataPacket | undefined> {
  // member_count as the service counts it: the column plus the group's delta rows.
  const [rows] = await t.db.sql.query<RowDataPacket[]>(
    `SELECT g.id, g.organization_id, g.name, g.description, ${MEMBER_COUNT} AS member_count,
       g.version, g.created_at, g.updated_at, g.deleted_at FROM org_groups g WHERE g.id = ?`,
    [groupId],
  );
  return rows[0];
}

/** Polls `check` until it returns true or the deadline passes. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error("condition not reached before the deadline");
    await new Promise((r) => setTimeout(r, 100));
  }
}

let seq = 0;
const unique = (prefix: string) => `${prefix}-${++seq}-${Date.now().toString(36)}`;
/** A well-formed id that names nothing. */
const unknownId = (prefix: "org" | "om" | "group") => `${prefix}_${ulid()}`;
/** More membership ids than a batch may name (1,001), each well-formed and naming nothing. */
const tooManyMembershipIds = () => Array.from({ length: 1001 }, () => unknownId("om"));

async function newOrg(c: Clients): Promise<string> {
  const { organization } = await c.orgs.createOrganization({ name: unique("Org") });
  return organization!.id;
}

async function newMember(
  c: Clients,
  organizationId: string,
  status = OrganizationMembershipStatus.UNSPECIFIED,
): Promise<OrganizationMembership> {
  const { organizationMembership } = await c.orgs.createOrganizationMembership({
    organizationId,
    userId: unique("user"),
    status,
  });
  return organizationMembership!;
}

async function newMembers(c: Clients, organizationId: string, n: number) {
  const out: OrganizationMembership[] = [];
  // Sequential, so the memberships are created (and ordered) as listed.
  for (let i = 0; i < n; i++) out.push(await newMember(c, organizationId));
  return out;
}

async function newGroup(
  c: Clients,
  organizationId: string,
  fields: { name?: string; description?: string } = {},
): Promise<Group> {
  const { group } = await c.groups.createGroup({
    organizationId,
    name: fields.name ?? unique("Group"),
    description: fields.description ?? "",
  });
  return group!;
}

/** The request fields naming one membership of one group. */
const link = (organizationId: string, groupId: string, organizationMembershipId: string) => ({
  organizationId,
  groupId,
  organizationMembershipId,
});

/** The request fields naming many memberships of one group. */
const batch = (organizationId: string, groupId: string, organizationMembershipIds: string[]) => ({
  organizationId,
  groupId,
  organizationMembershipIds,
});

/** Expects no outbox event after `mark`. */
async function expectNoEventsAfter(mark: number): Promise<void> {
  expect(await outboxAfter(t.db.sql, mark)).toEqual([]);
}

/** Expects exactly one outbox event after `mark`, of `type` for the group, caused by the API; returns it. */
async function expectOneEvent(
  mark: number,
  type: string,
  organizationId: string,
  groupId: string,
): Promise<OutboxRow> {
  const events = await outboxAfter(t.db.sql, mark);
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({ type, organizationId, groupId, cause: "api" });
  return events[0];
}

/** As expectOneEvent, for a per-member event whose payload names the group and membership. */
async function expectOneMemberEvent(
  mark: number,
  type: string,
  organizationId: string,
  groupId: string,
  m: OrganizationMembership,
): Promise<OutboxRow> {
  const event = await expectOneEvent(mark, type, organizationId, groupId);
  expect(event.payload).toMatchObject({
    groupId,
    organizationMembershipId: m.id,
    organizationId,
    userId: m.userId,
  });
  return event;
}

/** Expects several API events after `mark`, all of `type` for the group; returns them. */
async function expectMemberEvents(
  mark: number,
  type: string,
  groupId: string,
  membershipIds: string[],
): Promise<OutboxRow[]> {
  const events = await outboxAfter(t.db.sql, mark);
  expect(events.map((e) => e.type)).toEqual(Array(membershipIds.length).fill(type));
  expect(events.every((e) => e.cause === "api" && e.groupId === groupId)).toBe(true);
  expect(events.map((e) => e.payload.organizationMembershipId).sort()).toEqual(
    [...membershipIds].sort(),
  );
  return events;
}

/** Expects NOT_FOUND with reason GROUP_NOT_FOUND. */
async function expectGroupNotFound(call: Promise<unknown>): Promise<void> {
  await expectError(call, Code.NotFound, "GROUP_NOT_FOUND");
}

/** Expects INVALID_ARGUMENT with INVALID_FIELDS; returns the fields it names. */
async function invalidFields(call: Promise<unknown>): Promise<string[]> {
  return badFields(await expectError(call, Code.InvalidArgument, "INVALID_FIELDS"));
}

// ---------------------------------------------------------------------------
// Tests, through every front door
// ---------------------------------------------------------------------------

describe.each(DOORS)("GroupsService over %s", (door) => {
  let c: Clients;
  beforeAll(() => {
    c = t.clients(door);
  });

  describe("CreateGroup", () => {
    it("creates a group with a trimmed name and records group.created", async () => {
      const orgId = await newOrg(c);
      const mark = await lastOutboxSeq(t.db.sql);
      const { group } = await c.groups.createGroup({
        organizationId: orgId,
        name: "  Engineering \u3000", // white space, not a control character (a tab is refused)
        description: "Builds things",
      });
      expect(group).toBeDefined();
      const g = group!;
      expect(g.id).toMatch(GROUP_ID);
      expect(g.organizationId).toBe(orgId);
      expect(g.name).toBe("Engineering");
      expect(g.description).toBe("Builds things");
      expect(g.memberCount).toBe(0n);
      expect(g.etag).toMatch(/^v\d+$/);
      expectMillisecondTimestamp(g.createdAt);
      expectMillisecondTimestamp(g.updatedAt);
      expect(ms(g.updatedAt)).toBe(ms(g.createdAt));

      const row = await storedGroup(g.id);
      expect(row).toMatchObject({
        organization_id: orgId,
        name: "Engineering",
        description: "Builds things",
        member_count: 0,
        deleted_at: null,
      });

      const event = await expectOneEvent(mark, "group.created", orgId, g.id);
      expect(event.id).toMatch(EVENT_ID);
      expect(event.payload).toMatchObject({
        group: { id: g.id, organizationId: orgId, name: "Engineering", memberCount: 0 },
      });
      expect((await c.groups.getGroup({ organizationId: orgId, groupId: g.id })).group).toEqual(g);
    });

    it("treats an empty description as none", async () => {
      const orgId = await newOrg(c);
      const { group } = await c.groups.createGroup({ organizationId: orgId, name: "Finance" });
      expect(group!.description).toBe("");
      expect((await storedGroup(group!.id))!.description).toBeNull();
    });

    it("allows two groups with the same name", async () => {
      const orgId = await newOrg(c);
      const a = await newGroup(c, orgId, { name: "Same" });
      const b = await newGroup(c, orgId, { name: "Same" });
      expect(a.id).not.toBe(b.id);
      expect(await groupRows(orgId)).toBe(2);
    });

    it("answers NOT_FOUND for an unknown organization and writes nothing", async () => {
      const orgId = unknownId("org");
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.createGroup({ organizationId: orgId, name: "Nowhere" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      expect(await groupRows(orgId)).toBe(0);
      await expectNoEventsAfter(mark);
    });

    it("rejects a blank name and a malformed organization id, naming both fields", async () => {
      const mark = await lastOutboxSeq(t.db.sql);
      const err = await expectError(
        c.groups.createGroup({ organizationId: "org_nope", name: "   " }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err).sort()).toEqual(["name", "organization_id"]);
      await expectNoEventsAfter(mark);
    });

    it("replays a request_id: same group, no new row, no new event", async () => {
      const orgId = await newOrg(c);
      const requestId = unique("req");
      const mark = await lastOutboxSeq(t.db.sql);
      const first = await c.groups.createGroup({
        organizationId: orgId,
        name: "Ops",
        description: "Keeps it running",
        requestId,
      });
      const afterFirst = await outboxAfter(t.db.sql, mark);
      expect(afterFirst.map((e) => e.type)).toEqual(["group.created"]);

      const again = await c.groups.createGroup({
        organizationId: orgId,
        name: "Ops",
        description: "Keeps it running",
        requestId,
      });
      expect(again.group).toEqual(first.group);
      expect(await groupRows(orgId)).toBe(1);
      await expectNoEventsAfter(afterFirst[0].sequence);

      // The same key with other parameters is a client bug.
      await expectError(
        c.groups.createGroup({ organizationId: orgId, name: "Ops 2", requestId }),
        Code.InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
      );
      await expectError(
        c.groups.createGroup({
          organizationId: orgId,
          name: "Ops",
          description: "Something else",
          requestId,
        }),
        Code.InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
      );
      expect(await groupRows(orgId)).toBe(1);
      await expectNoEventsAfter(afterFirst[0].sequence);

      // Keys are scoped to the organization.
      const otherOrg = await newOrg(c);
      const other = await c.groups.createGroup({
        organizationId: otherOrg,
        name: "Ops",
        description: "Keeps it running",
        requestId,
      });
      expect(other.group!.id).not.toBe(first.group!.id);
      expect(other.group!.organizationId).toBe(otherOrg);
    });

    it("creates one group for concurrent first uses of one request_id", async () => {
      const orgId = await newOrg(c);
      const requestId = unique("race");
      const mark = await lastOutboxSeq(t.db.sql);
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          c.groups.createGroup({ organizationId: orgId, name: "Racer", requestId }),
        ),
      );
      const ids = new Set(results.map((r) => r.group!.id));
      expect(ids.size).toBe(1);
      expect(await groupRows(orgId)).toBe(1);
      expect((await outboxAfter(t.db.sql, mark)).map((e) => e.type)).toEqual(["group.created"]);
    });

    it("replays the first response even after the group changed", async () => {
      const orgId = await newOrg(c);
      const requestId = unique("req");
      const first = await c.groups.createGroup({ organizationId: orgId, name: "A", requestId });
      await c.groups.updateGroup({ organizationId: orgId, groupId: first.group!.id, name: "B" });
      const again = await c.groups.createGroup({ organizationId: orgId, name: "A", requestId });
      expect(again.group!.id).toBe(first.group!.id);
      expect(await groupRows(orgId)).toBe(1);
    });
  });

  describe("GetGroup", () => {
    it("reads a group of its organization", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "Design", description: "Pixels" });
      const { group } = await c.groups.getGroup({ organizationId: orgId, groupId: g.id });
      expect(group).toEqual(g);
    });

    it("answers NOT_FOUND for a group of another organization or an unknown group", async () => {
      const orgA = await newOrg(c);
      const orgB = await newOrg(c);
      const g = await newGroup(c, orgA);
      await expectGroupNotFound(c.groups.getGroup({ organizationId: orgB, groupId: g.id }));
      await expectGroupNotFound(
        c.groups.getGroup({ organizationId: orgA, groupId: unknownId("group") }),
      );
    });

    it("answers INVALID_ARGUMENT for a malformed group id", async () => {
      const orgId = await newOrg(c);
      expect(
        await invalidFields(c.groups.getGroup({ organizationId: orgId, groupId: "grp_123" })),
      ).toEqual(["group_id"]);
    });
  });

  describe("ListGroups", () => {
    it("lists the organization's groups by creation, both orders, across pages", async () => {
      const orgId = await newOrg(c);
      const other = await newOrg(c);
      await newGroup(c, other);
      const created: Group[] = [];
      for (let i = 0; i < 5; i++) created.push(await newGroup(c, orgId, { name: `G${i}` }));
      const ids = created.map((g) => g.id);

      const desc = await c.groups.listGroups({ organizationId: orgId });
      expect(desc.groups.map((g) => g.id)).toEqual([...ids].reverse());
      expect(desc.groups[0]).toEqual(created[4]);
      expect(desc.listMetadata?.after ?? "").toBe("");

      const asc = await c.groups.listGroups({ organizationId: orgId, order: Order.ASC });
      expect(asc.groups.map((g) => g.id)).toEqual(ids);

      const p1 = await c.groups.listGroups({ organizationId: orgId, order: Order.ASC, limit: 2 });
      expect(p1.groups.map((g) => g.id)).toEqual(ids.slice(0, 2));
      expect(p1.listMetadata!.before).toBe("");
      expect(p1.listMetadata!.after).toBe(ids[1]);
      const p2 = await c.groups.listGroups({
        organizationId: orgId,
        order: Order.ASC,
        limit: 2,
        after: p1.listMetadata!.after,
      });
      expect(p2.groups.map((g) => g.id)).toEqual(ids.slice(2, 4));
      expect(p2.listMetadata!.before).toBe(ids[2]);
      const p3 = await c.groups.listGroups({
        organizationId: orgId,
        order: Order.ASC,
        limit: 2,
        after: p2.listMetadata!.after,
      });
      expect(p3.groups.map((g) => g.id)).toEqual(ids.slice(4));
      expect(p3.listMetadata!.after).toBe("");
      const back = await c.groups.listGroups({
        organizationId: orgId,
        order: Order.ASC,
        limit: 2,
        before: p3.listMetadata!.before,
      });
      expect(back.groups.map((g) => g.id)).toEqual(ids.slice(2, 4));
    });

    it("answers NOT_FOUND for an unknown organization and INVALID_ARGUMENT for a bad limit or foreign cursor", async () => {
      await expectError(
        c.groups.listGroups({ organizationId: unknownId("org") }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      const orgId = await newOrg(c);
      const other = await newOrg(c);
      const foreign = await newGroup(c, other);
      expect(
        await invalidFields(c.groups.listGroups({ organizationId: orgId, limit: 1001 })),
      ).toEqual(["limit"]);
      expect(
        await invalidFields(c.groups.listGroups({ organizationId: orgId, after: foreign.id })),
      ).toEqual(["after"]);
    });
  });

  describe("UpdateGroup", () => {
    it("changes only the name when only the name is present, recording the previous name", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "Old", description: "Keep me" });
      const mark = await lastOutboxSeq(t.db.sql);
      const { group } = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        name: "  New  ",
      });
      expect(group).toMatchObject({
        id: g.id,
        name: "New",
        description: "Keep me",
        memberCount: 0n,
      });
      expect(group!.etag).not.toBe(g.etag);
      expect(group!.etag).toMatch(/^v\d+$/);
      expect(ms(group!.createdAt)).toBe(ms(g.createdAt));
      expect(ms(group!.updatedAt)).toBeGreaterThanOrEqual(ms(g.updatedAt));
      expect((await c.groups.getGroup({ organizationId: orgId, groupId: g.id })).group).toEqual(
        group,
      );

      const event = await expectOneEvent(mark, "group.updated", orgId, g.id);
      expect(event.payload.previous).toEqual({ name: "Old" });
      expect(event.payload.group).toMatchObject({ name: "New", description: "Keep me" });
    });

    it("clears the description with an empty string, recording the previous description", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "Name", description: "Remove me" });
      const mark = await lastOutboxSeq(t.db.sql);
      const { group } = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        description: "",
      });
      expect(group).toMatchObject({ name: "Name", description: "" });
      expect(group!.etag).not.toBe(g.etag);
      expect((await storedGroup(g.id))!.description).toBeNull();
      const events = await outboxAfter(t.db.sql, mark);
      expect(events.map((e) => e.type)).toEqual(["group.updated"]);
      expect(events[0].payload.previous).toEqual({ description: "Remove me" });
    });

    it("changes both fields at once", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "N1" });
      const mark = await lastOutboxSeq(t.db.sql);
      const { group } = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        name: "N2",
        description: "D2",
        etag: g.etag,
      });
      expect(group).toMatchObject({ name: "N2", description: "D2" });
      const events = await outboxAfter(t.db.sql, mark);
      expect(events.map((e) => e.type)).toEqual(["group.updated"]);
      expect(events[0].payload.previous).toEqual({ name: "N1", description: null });
    });

    it("records nothing and keeps the etag when nothing changes", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "Same", description: "Same too" });
      const mark = await lastOutboxSeq(t.db.sql);
      const a = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        name: " Same ",
        description: "Same too",
      });
      const b = await c.groups.updateGroup({ organizationId: orgId, groupId: g.id });
      for (const { group } of [a, b]) {
        expect(group).toEqual(g);
      }
      await expectNoEventsAfter(mark);
    });

    it("answers ABORTED for a stale etag and changes nothing", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "V1" });
      const { group: v2 } = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        name: "V2",
        etag: g.etag,
      });
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.updateGroup({ organizationId: orgId, groupId: g.id, name: "V3", etag: g.etag }),
        Code.Aborted,
        "ETAG_MISMATCH",
      );
      expect((await c.groups.getGroup({ organizationId: orgId, groupId: g.id })).group).toEqual(v2);
      await expectNoEventsAfter(mark);
      const { group: v3 } = await c.groups.updateGroup({
        organizationId: orgId,
        groupId: g.id,
        name: "V3",
        etag: v2!.etag,
      });
      expect(v3!.name).toBe("V3");
    });

    it("answers NOT_FOUND for a group of another organization", async () => {
      const orgA = await newOrg(c);
      const orgB = await newOrg(c);
      const g = await newGroup(c, orgA, { name: "Mine" });
      await expectGroupNotFound(
        c.groups.updateGroup({ organizationId: orgB, groupId: g.id, name: "Stolen" }),
      );
      expect((await storedGroup(g.id))!.name).toBe("Mine");
    });

    it("rejects a blank name", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId);
      expect(
        await invalidFields(
          c.groups.updateGroup({ organizationId: orgId, groupId: g.id, name: "  " }),
        ),
      ).toEqual(["name"]);
    });
  });

  describe("DeleteGroup", () => {
    it("answers ABORTED for a stale etag and keeps the group", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId, { name: "Before" });
      await c.groups.updateGroup({ organizationId: orgId, groupId: g.id, name: "After" });
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.deleteGroup({ organizationId: orgId, groupId: g.id, etag: g.etag }),
        Code.Aborted,
        "ETAG_MISMATCH",
      );
      expect((await c.groups.getGroup({ organizationId: orgId, groupId: g.id })).group!.name).toBe(
        "After",
      );
      await expectNoEventsAfter(mark);
    });

    it("removes the group from every read, records one group.deleted, and is reaped", async () => {
      const orgId = await newOrg(c);
      const [m1, m2] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId, { name: "Doomed" });
      const keep = await newGroup(c, orgId, { name: "Kept" });
      await c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, m2.id]));
      await c.groups.addGroupMember(link(orgId, keep.id, m1.id));
      const { group: current } = await c.groups.getGroup({ organizationId: orgId, groupId: g.id });

      const mark = await lastOutboxSeq(t.db.sql);
      await c.groups.deleteGroup({ organizationId: orgId, groupId: g.id, etag: current!.etag });

      const event = await expectOneEvent(mark, "group.deleted", orgId, g.id);
      expect(event.payload.group).toMatchObject({ id: g.id, name: "Doomed", memberCount: 2 });

      await expectGroupNotFound(c.groups.getGroup({ organizationId: orgId, groupId: g.id }));
      await expectGroupNotFound(c.groups.deleteGroup({ organizationId: orgId, groupId: g.id }));
      await expectGroupNotFound(
        c.groups.listGroupMembers({ organizationId: orgId, groupId: g.id }),
      );
      await expectGroupNotFound(c.groups.addGroupMember(link(orgId, g.id, m1.id)));
      const listed = await c.groups.listGroups({ organizationId: orgId });
      expect(listed.groups.map((x) => x.id)).toEqual([keep.id]);
      const ofM1 = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m1.id,
      });
      expect(ofM1.groups.map((x) => x.id)).toEqual([keep.id]);
      const ofM2 = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m2.id,
      });
      expect(ofM2.groups).toEqual([]);
      const check = await c.groups.checkGroupMembership({
        organizationMembershipId: m1.id,
        groupIds: [g.id, keep.id],
      });
      expect(check.groupIds).toEqual([keep.id]);

      // The reaper removes the links, then the row; other groups keep theirs.
      await eventually(async () => (await linkRows(g.id)) === 0 && !(await storedGroup(g.id)));
      expect(await linkRows(keep.id)).toBe(1);
      // The memberships themselves remain, and no per-member events were recorded.
      expect(
        (await c.orgs.getOrganizationMembership({ organizationMembershipId: m2.id }))
          .organizationMembership!.id,
      ).toBe(m2.id);
      expect((await outboxAfter(t.db.sql, mark)).map((e) => e.type)).toEqual(["group.deleted"]);
    });
  });

  describe("AddGroupMember", () => {
    it("adds a membership, counts it, records group.member_added and keeps the etag", async () => {
      const orgId = await newOrg(c);
      const m = await newMember(c, orgId);
      const g = await newGroup(c, orgId);
      const mark = await lastOutboxSeq(t.db.sql);
      const res = await c.groups.addGroupMember(link(orgId, g.id, m.id));
      expect(res.added).toBe(true);
      expect(res.group).toMatchObject({ id: g.id, memberCount: 1n, etag: g.etag, name: g.name });
      expect(await linkRow(g.id, m.id)).toBe(1);
      expect((await storedGroup(g.id))!.member_count).toBe(1);

      const event = await expectOneMemberEvent(mark, "group.member_added", orgId, g.id, m);

      // Adding again is OK, changes nothing and records nothing.
      const again = await c.groups.addGroupMember(link(orgId, g.id, m.id));
      expect(again.added).toBe(false);
      expect(again.group).toMatchObject({ id: g.id, memberCount: 1n, etag: g.etag });
      expect(await linkRows(g.id)).toBe(1);
      await expectNoEventsAfter(event.sequence);
      const { group } = await c.groups.getGroup({ organizationId: orgId, groupId: g.id });
      expect(group!.memberCount).toBe(1n);
      expect(group!.etag).toBe(g.etag);
    });

    it("answers FAILED_PRECONDITION for a membership of another organization", async () => {
      const orgA = await newOrg(c);
      const orgB = await newOrg(c);
      const foreign = await newMember(c, orgB);
      const g = await newGroup(c, orgA);
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.addGroupMember(link(orgA, g.id, foreign.id)),
        Code.FailedPrecondition,
        "MEMBERSHIP_IN_OTHER_ORGANIZATION",
      );
      expect(await linkRows(g.id)).toBe(0);
      expect((await storedGroup(g.id))!.member_count).toBe(0);
      await expectNoEventsAfter(mark);
    });

    it("answers NOT_FOUND for an unknown membership or group", async () => {
      const orgId = await newOrg(c);
      const g = await newGroup(c, orgId);
      const m = await newMember(c, orgId);
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.addGroupMember(link(orgId, g.id, unknownId("om"))),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      await expectGroupNotFound(c.groups.addGroupMember(link(orgId, unknownId("group"), m.id)));
      expect(await linkRows(g.id)).toBe(0);
      await expectNoEventsAfter(mark);
    });
  });

  describe("RemoveGroupMember", () => {
    it("removes a member, records group.member_removed, and leaves membership and group", async () => {
      const orgId = await newOrg(c);
      const [m, stays] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId);
      await c.groups.batchAddGroupMembers(batch(orgId, g.id, [m.id, stays.id]));
      const mark = await lastOutboxSeq(t.db.sql);
      const res = await c.groups.removeGroupMember(link(orgId, g.id, m.id));
      expect(res.removed).toBe(true);
      expect(res.group).toMatchObject({ id: g.id, memberCount: 1n, etag: g.etag });
      expect(await linkRow(g.id, m.id)).toBe(0);
      expect(await linkRow(g.id, stays.id)).toBe(1);
      expect((await storedGroup(g.id))!.member_count).toBe(1);

      await expectOneMemberEvent(mark, "group.member_removed", orgId, g.id, m);

      const { organizationMembership } = await c.orgs.getOrganizationMembership({
        organizationMembershipId: m.id,
      });
      expect(organizationMembership!.id).toBe(m.id);
      const { group } = await c.groups.getGroup({ organizationId: orgId, groupId: g.id });
      expect(group!.memberCount).toBe(1n);
    });

    it("answers NOT_FOUND for a non-member, or OK with removed=false under allow_missing", async () => {
      const orgId = await newOrg(c);
      const [m, other] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId);
      await c.groups.addGroupMember(link(orgId, g.id, other.id));
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.removeGroupMember(link(orgId, g.id, m.id)),
        Code.NotFound,
        "GROUP_MEMBERSHIP_NOT_FOUND",
      );
      const res = await c.groups.removeGroupMember({
        organizationId: orgId,
        groupId: g.id,
        organizationMembershipId: m.id,
        allowMissing: true,
      });
      expect(res.removed).toBe(false);
      expect(res.group).toMatchObject({ id: g.id, memberCount: 1n });
      expect(await linkRows(g.id)).toBe(1);
      await expectNoEventsAfter(mark);
    });

    it("answers NOT_FOUND for an unknown membership and for a group of another organization", async () => {
      const orgA = await newOrg(c);
      const orgB = await newOrg(c);
      const m = await newMember(c, orgA);
      const g = await newGroup(c, orgA);
      await c.groups.addGroupMember(link(orgA, g.id, m.id));
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.removeGroupMember(link(orgA, g.id, unknownId("om"))),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      await expectGroupNotFound(c.groups.removeGroupMember(link(orgB, g.id, m.id)));
      expect(await linkRows(g.id)).toBe(1);
      await expectNoEventsAfter(mark);
    });

    it("with allow_missing, a membership that no longer exists is OK and no change", async () => {
      const orgId = await newOrg(c);
      const [stays, leaves] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId);
      await c.groups.batchAddGroupMembers(batch(orgId, g.id, [stays.id, leaves.id]));
      // Deleting the membership removes it from the group (and says so in an event).
      await c.orgs.deleteOrganizationMembership({ organizationMembershipId: leaves.id });
      const mark = await lastOutboxSeq(t.db.sql);
      // A clean-up that runs after it, and one with an id that never existed.
      for (const id of [leaves.id, unknownId("om")]) {
        const res = await c.groups.removeGroupMember({
          ...link(orgId, g.id, id),
          allowMissing: true,
        });
        expect(res.removed).toBe(false);
        expect(res.group).toMatchObject({ id: g.id, memberCount: 1n });
      }
      await expectError(
        c.groups.removeGroupMember(link(orgId, g.id, leaves.id)),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      expect(await linkRows(g.id)).toBe(1);
      await expectNoEventsAfter(mark);
    });
  });

  describe("ListGroupMembers", () => {
    it("lists the members with their status, by membership creation, across pages", async () => {
      const orgId = await newOrg(c);
      const m1 = await newMember(c, orgId);
      const m2 = await newMember(c, orgId, OrganizationMembershipStatus.INACTIVE);
      const m3 = await newMember(c, orgId, OrganizationMembershipStatus.PENDING);
      const notMember = await newMember(c, orgId);
      const g = await newGroup(c, orgId);
      // Added out of creation order: the list follows membership creation.
      for (const m of [m3, m1, m2]) {
        await c.groups.addGroupMember(link(orgId, g.id, m.id));
      }
      const asc = await c.groups.listGroupMembers({
        organizationId: orgId,
        groupId: g.id,
        order: Order.ASC,
      });
      expect(asc.organizationMemberships).toEqual([m1, m2, m3]);
      expect(asc.organizationMemberships.map((m) => m.status)).toEqual([
        OrganizationMembershipStatus.ACTIVE,
        OrganizationMembershipStatus.INACTIVE,
        OrganizationMembershipStatus.PENDING,
      ]);
      expect(asc.organizationMemberships.map((m) => m.id)).not.toContain(notMember.id);

      const desc = await c.groups.listGroupMembers({ organizationId: orgId, groupId: g.id });
      expect(desc.organizationMemberships.map((m) => m.id)).toEqual([m3.id, m2.id, m1.id]);

      const p1 = await c.groups.listGroupMembers({
        organizationId: orgId,
        groupId: g.id,
        limit: 2,
      });
      expect(p1.organizationMemberships.map((m) => m.id)).toEqual([m3.id, m2.id]);
      expect(p1.listMetadata!.after).toBe(m2.id);
      const p2 = await c.groups.listGroupMembers({
        organizationId: orgId,
        groupId: g.id,
        limit: 2,
        after: p1.listMetadata!.after,
      });
      expect(p2.organizationMemberships.map((m) => m.id)).toEqual([m1.id]);
      expect(p2.listMetadata!.after).toBe("");
    });

    it("answers NOT_FOUND for a group of another organization", async () => {
      const orgA = await newOrg(c);
      const orgB = await newOrg(c);
      const g = await newGroup(c, orgA);
      await expectGroupNotFound(c.groups.listGroupMembers({ organizationId: orgB, groupId: g.id }));
    });
  });

  describe("ListGroupsForOrganizationMembership", () => {
    it("lists the groups of a membership by group creation", async () => {
      const orgId = await newOrg(c);
      const m = await newMember(c, orgId);
      const g1 = await newGroup(c, orgId);
      const g2 = await newGroup(c, orgId);
      const g3 = await newGroup(c, orgId);
      for (const g of [g3, g1]) {
        await c.groups.addGroupMember(link(orgId, g.id, m.id));
      }
      const desc = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m.id,
      });
      expect(desc.groups.map((g) => g.id)).toEqual([g3.id, g1.id]);
      expect(desc.groups.map((g) => g.memberCount)).toEqual([1n, 1n]);
      expect(desc.groups.map((g) => g.id)).not.toContain(g2.id);
      const asc = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m.id,
        order: Order.ASC,
        limit: 1,
      });
      expect(asc.groups.map((g) => g.id)).toEqual([g1.id]);
      expect(asc.listMetadata!.after).toBe(g1.id);
      const next = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m.id,
        order: Order.ASC,
        limit: 1,
        after: g1.id,
      });
      expect(next.groups.map((g) => g.id)).toEqual([g3.id]);
      expect(next.listMetadata!.after).toBe("");
    });

    it("answers an empty list for a membership in no group and NOT_FOUND for an unknown one", async () => {
      const orgId = await newOrg(c);
      const m = await newMember(c, orgId);
      await newGroup(c, orgId);
      const res = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: m.id,
      });
      expect(res.groups).toEqual([]);
      expect(res.listMetadata?.after ?? "").toBe("");
      await expectError(
        c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: unknownId("om") }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
    });
  });

  describe("BatchAddGroupMembers", () => {
    it("adds many, reporting each id in request order, one event per actual add", async () => {
      const orgId = await newOrg(c);
      const [m1, m2, m3, m4, m5] = await newMembers(c, orgId, 5);
      const g = await newGroup(c, orgId);
      await c.groups.addGroupMember(link(orgId, g.id, m2.id));
      const mark = await lastOutboxSeq(t.db.sql);
      const res = await c.groups.batchAddGroupMembers(
        batch(orgId, g.id, [m3.id, m1.id, m2.id, m5.id]),
      );
      expect(res.results.map((r) => [r.organizationMembershipId, r.added])).toEqual([
        [m3.id, true],
        [m1.id, true],
        [m2.id, false],
        [m5.id, true],
      ]);
      expect(res.group).toMatchObject({ id: g.id, memberCount: 4n, etag: g.etag });
      expect(await linkRows(g.id)).toBe(4);
      expect(await linkRow(g.id, m4.id)).toBe(0);
      expect((await storedGroup(g.id))!.member_count).toBe(4);

      const events = await expectMemberEvents(mark, "group.member_added", g.id, [
        m1.id,
        m3.id,
        m5.id,
      ]);
      const byMember = new Map(events.map((e) => [e.payload.organizationMembershipId, e.payload]));
      expect(byMember.get(m5.id)).toMatchObject({
        groupId: g.id,
        organizationId: orgId,
        userId: m5.userId,
      });

      // Replaying the whole batch adds nothing.
      const again = await c.groups.batchAddGroupMembers(
        batch(orgId, g.id, [m3.id, m1.id, m2.id, m5.id]),
      );
      expect(again.results.map((r) => r.added)).toEqual([false, false, false, false]);
      expect(again.group!.memberCount).toBe(4n);
      await expectNoEventsAfter(events[events.length - 1].sequence);
    });

    it("is all-or-nothing: one unknown id is NOT_FOUND and nothing is written", async () => {
      const orgId = await newOrg(c);
      const [m1, m2] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId);
      const missing = unknownId("om");
      const mark = await lastOutboxSeq(t.db.sql);
      const err = await expectError(
        c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, missing, m2.id])),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      expect(badFields(err)).toEqual(["organization_membership_ids[1]"]);
      expect(await linkRows(g.id)).toBe(0);
      expect((await storedGroup(g.id))!.member_count).toBe(0);
      await expectNoEventsAfter(mark);
    });

    it("is all-or-nothing: one foreign id is FAILED_PRECONDITION and nothing is written", async () => {
      const orgId = await newOrg(c);
      const other = await newOrg(c);
      const [m1, m2] = await newMembers(c, orgId, 2);
      const foreign = await newMember(c, other);
      const g = await newGroup(c, orgId);
      const mark = await lastOutboxSeq(t.db.sql);
      const err = await expectError(
        c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, m2.id, foreign.id])),
        Code.FailedPrecondition,
        "MEMBERSHIP_IN_OTHER_ORGANIZATION",
      );
      expect(badFields(err)).toEqual(["organization_membership_ids[2]"]);
      expect(await linkRows(g.id)).toBe(0);
      await expectNoEventsAfter(mark);
    });

    it("rejects duplicates, an empty list and more than 1,000 ids", async () => {
      const orgId = await newOrg(c);
      const [m1, m2] = await newMembers(c, orgId, 2);
      const g = await newGroup(c, orgId);
      const mark = await lastOutboxSeq(t.db.sql);
      expect(
        await invalidFields(
          c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, m2.id, m1.id])),
        ),
      ).toEqual(["organization_membership_ids[2]"]);
      expect(await invalidFields(c.groups.batchAddGroupMembers(batch(orgId, g.id, [])))).toEqual([
        "organization_membership_ids",
      ]);
      expect(
        await invalidFields(
          c.groups.batchAddGroupMembers(batch(orgId, g.id, tooManyMembershipIds())),
        ),
      ).toContain("organization_membership_ids");
      expect(await linkRows(g.id)).toBe(0);
      await expectNoEventsAfter(mark);
    });
  });

  describe("BatchRemoveGroupMembers", () => {
    it("removes many, reporting each id in request order, one event per actual removal", async () => {
      const orgId = await newOrg(c);
      const [m1, m2, m3, m4] = await newMembers(c, orgId, 4);
      const g = await newGroup(c, orgId);
      await c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, m2.id, m3.id]));
      const mark = await lastOutboxSeq(t.db.sql);
      const res = await c.groups.batchRemoveGroupMembers(batch(orgId, g.id, [m3.id, m4.id, m1.id]));
      expect(res.results.map((r) => [r.organizationMembershipId, r.removed])).toEqual([
        [m3.id, true],
        [m4.id, false],
        [m1.id, true],
      ]);
      expect(res.group).toMatchObject({ id: g.id, memberCount: 1n, etag: g.etag });
      expect(await linkRows(g.id)).toBe(1);
      expect(await linkRow(g.id, m2.id)).toBe(1);
      expect((await storedGroup(g.id))!.member_count).toBe(1);

      await expectMemberEvents(mark, "group.member_removed", g.id, [m1.id, m3.id]);
      // The memberships remain.
      const listed = await c.orgs.listOrganizationMemberships({ organizationId: orgId });
      expect(listed.organizationMemberships).toHaveLength(4);
    });

    it("is all-or-nothing on unknown and foreign ids, and rejects duplicates", async () => {
      const orgId = await newOrg(c);
      const other = await newOrg(c);
      const [m1, m2] = await newMembers(c, orgId, 2);
      const foreign = await newMember(c, other);
      const g = await newGroup(c, orgId);
      await c.groups.batchAddGroupMembers(batch(orgId, g.id, [m1.id, m2.id]));
      const mark = await lastOutboxSeq(t.db.sql);
      await expectError(
        c.groups.batchRemoveGroupMembers(batch(orgId, g.id, [m1.id, unknownId("om")])),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      const foreignErr = await expectError(
        c.groups.batchRemoveGroupMembers(batch(orgId, g.id, [foreign.id, m2.id])),
        Code.FailedPrecondition,
        "MEMBERSHIP_IN_OTHER_ORGANIZATION",
      );
      // A remove's message does not speak of joining.
      expect(foreignErr.rawMessage).toBe(`membership of another organization cannot be in ${g.id}`);
      expect(
        await invalidFields(c.groups.batchRemoveGroupMembers(batch(orgId, g.id, [m2.id, m2.id]))),
      ).toEqual(["organization_membership_ids[1]"]);
      await expectError(
        c.groups.batchRemoveGroupMembers(batch(orgId, g.id, tooManyMembershipIds())),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(await linkRows(g.id)).toBe(2);
      expect((await storedGroup(g.id))!.member_count).toBe(2);
      await expectNoEventsAfter(mark);
    });
  });

  describe("CheckGroupMembership", () => {
    it("answers the subset the membership belongs to, in request order, without repeats", async () => {
      const orgId = await newOrg(c);
      const other = await newOrg(c);
      const m = await newMember(c, orgId);
      const g1 = await newGroup(c, orgId);
      const g2 = await newGroup(c, orgId);
      const g3 = await newGroup(c, orgId);
      const foreignGroup = await newGroup(c, other);
      for (const g of [g1, g3]) {
        await c.groups.addGroupMember(link(orgId, g.id, m.id));
      }
      const res = await c.groups.checkGroupMembership({
        organizationMembershipId: m.id,
        groupIds: [g3.id, unknownId("group"), g2.id, foreignGroup.id, g1.id, g3.id],
      });
      expect(res.groupIds).toEqual([g3.id, g1.id]);

      const none = await c.groups.checkGroupMembership({
        organizationMembershipId: m.id,
        groupIds: [g2.id],
      });
      expect(none.groupIds).toEqual([]);

      await c.groups.removeGroupMember(link(orgId, g3.id, m.id));
      const after = await c.groups.checkGroupMembership({
        organizationMembershipId: m.id,
        groupIds: [g1.id, g2.id, g3.id],
      });
      expect(after.groupIds).toEqual([g1.id]);
    });

    it("answers NOT_FOUND for an unknown membership and INVALID_ARGUMENT for bad group lists", async () => {
      const orgId = await newOrg(c);
      const m = await newMember(c, orgId);
      const g = await newGroup(c, orgId);
      await expectError(
        c.groups.checkGroupMembership({
          organizationMembershipId: unknownId("om"),
          groupIds: [g.id],
        }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      expect(
        await invalidFields(
          c.groups.checkGroupMembership({ organizationMembershipId: m.id, groupIds: [] }),
        ),
      ).toEqual(["group_ids"]);
      expect(
        await invalidFields(
          c.groups.checkGroupMembership({
            organizationMembershipId: m.id,
            groupIds: Array.from({ length: 101 }, () => unknownId("group")),
          }),
        ),
      ).toContain("group_ids");
      expect(
        await invalidFields(
          c.groups.checkGroupMembership({ organizationMembershipId: m.id, groupIds: [g.id, "x"] }),
        ),
      ).toEqual(["group_ids[1]"]);
    });
  });

  it("keeps member_count equal to the stored links through a mix of changes", async () => {
    const orgId = await newOrg(c);
    const ms5 = await newMembers(c, orgId, 5);
    const g = await newGroup(c, orgId);
    const ids = ms5.map((m) => m.id);
    await c.groups.batchAddGroupMembers(batch(orgId, g.id, ids.slice(0, 4)));
    await c.groups.addGroupMember(link(orgId, g.id, ids[4]));
    await c.groups.removeGroupMember(link(orgId, g.id, ids[0]));
    await c.groups.batchRemoveGroupMembers(batch(orgId, g.id, [ids[0], ids[1]]));
    await c.orgs.deleteOrganizationMembership({ organizationMembershipId: ids[2] });
    const { group } = await c.groups.getGroup({ organizationId: orgId, groupId: g.id });
    expect(group!.memberCount).toBe(2n);
    expect(await linkRows(g.id)).toBe(2);
    const members = await c.groups.listGroupMembers({
      organizationId: orgId,
      groupId: g.id,
      order: Order.ASC,
    });
    expect(members.organizationMemberships.map((m) => m.id)).toEqual([ids[3], ids[4]]);
  });
});
