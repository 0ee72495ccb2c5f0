import { Code } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import type { Group } from "../../clients/src/gen/groups/v1/groups_pb.js";
import type { OrganizationMembership } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { DOORS, startTestServer, type Clients, type TestServer } from "../support/server.js";
import { expectError } from "../support/assertions.js";
import { lastOutboxSeq, outboxAfter } from "../support/outbox.js";
import { MEMBER_COUNT } from "../../server/src/store/pagination.js";

// The reaper's chunked link deletes, as they happen (the store is otherwise untouched).
const linkChunks = vi.hoisted(() => [] as { groupIds: string[]; deleted: number }[]);
vi.mock("../../server/src/store/group-members.js", async (importOriginal) => {
  const store = await importOriginal<typeof import("../../server/src/store/group-members.js")>();
  return {
    ...store,
    deleteMembershipsOfGroupsChunk: async (
      ...args: Parameters<typeof store.deleteMembershipsOfGroupsChunk>
    ) => {
      const deleted = await store.deleteMembershipsOfGroupsChunk(...args);
      linkChunks.push({ groupIds: args[1], deleted });
      return deleted;
    },
  };
});

let t: TestServer;

beforeAll(async () => {
  // Small chunks so that even a modest organization is removed in many transactions.
  t = await startTestServer({}, { reaper: { chunkSize: 200, groupChunkSize: 2, intervalMs: 200 } });
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

/** Rows that still belong to the organization, table by table. */
async function rowsOfOrganization(organizationId: string) {
  return {
    organizations: await count("SELECT COUNT(*) AS n FROM organizations WHERE id = ?", [
      organizationId,
    ]),
    memberships: await count(
      "SELECT COUNT(*) AS n FROM organization_memberships WHERE organization_id = ?",
      [organizationId],
    ),
    groups: await count("SELECT COUNT(*) AS n FROM org_groups WHERE organization_id = ?", [
      organizationId,
    ]),
    groupMemberships: await count(
      `SELECT COUNT(*) AS n FROM group_memberships gm
       WHERE gm.group_id IN (SELECT id FROM org_groups WHERE organization_id = ?)
          OR gm.organization_membership_id IN
             (SELECT id FROM organization_memberships WHERE organization_id = ?)`,
      [organizationId, organizationId],
    ),
    idempotencyKeys: await count(
      "SELECT COUNT(*) AS n FROM idempotency_keys WHERE organization_id = ?",
      [organizationId],
    ),
  };
}

const NOTHING = {
  organizations: 0,
  memberships: 0,
  groups: 0,
  groupMemberships: 0,
  idempotencyKeys: 0,
};

/** Polls until the organization has no rows left, or fails at the deadline. */
async function waitUntilGone(organizationId: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await rowsOfOrganization(organizationId);
    if (Object.values(left).every((n) => n === 0)) return;
    if (Date.now() > deadline) {
      expect(left, "rows of the deleted organization left at the deadline").toEqual(NOTHING);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs `fn` with the background reaper paused, so that what the API shows
 * right after a deletion is checked before any cleanup could have happened.
 */
async function withReaperPaused(fn: () => Promise<void>) {
  await t.server.reaper.stop();
  try {
    await fn();
  } finally {
    t.server.reaper.start();
  }
}

/** Polls `check` until it returns true or the deadline passes. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached before the deadline");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const storedMemberCount = async (groupId: string) =>
  count(`SELECT ${MEMBER_COUNT} AS n FROM org_groups g WHERE g.id = ?`, [groupId]);
const linkRows = (groupId: string) =>
  count("SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?", [groupId]);

let seq = 0;
const unique = (prefix: string) => `${prefix}-${++seq}-${Date.now().toString(36)}`;

async function newOrg(c: Clients): Promise<string> {
  const { organization } = await c.orgs.createOrganization({ name: unique("Org") });
  return organization!.id;
}

/** n memberships, created a few at a time. */
async function newMembers(c: Clients, organizationId: string, n: number, userPrefix = "user") {
  const out: OrganizationMembership[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const { organizationMembership } = await c.orgs.createOrganizationMembership({
        organizationId,
        userId: `${userPrefix}-${i}`,
      });
      out[i] = organizationMembership!;
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, 12) }, worker));
  return out;
}

async function newGroup(c: Clients, organizationId: string, requestId = ""): Promise<Group> {
  const { group } = await c.groups.createGroup({
    organizationId,
    name: unique("Group"),
    requestId,
  });
  return group!;
}

async function addAll(c: Clients, organizationId: string, groupId: string, ids: string[]) {
  for (let i = 0; i < ids.length; i += 1000) {
    await c.groups.batchAddGroupMembers({
      organizationId,
      groupId,
      organizationMembershipIds: ids.slice(i, i + 1000),
    });
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe.each(DOORS)("cascades over %s", (door) => {
  let c: Clients;
  beforeAll(() => {
    c = t.clients(door);
  });

  it("DeleteOrganizationMembership leaves every group with one system group.member_removed each", async () => {
    const orgId = await newOrg(c);
    const [leaver, stays] = await newMembers(c, orgId, 2);
    const g1 = await newGroup(c, orgId);
    const g2 = await newGroup(c, orgId);
    const g3 = await newGroup(c, orgId);
    await addAll(c, orgId, g1.id, [leaver.id, stays.id]);
    await addAll(c, orgId, g2.id, [leaver.id]);
    await addAll(c, orgId, g3.id, [stays.id]);

    const mark = await lastOutboxSeq(t.db.sql);
    await c.orgs.deleteOrganizationMembership({ organizationMembershipId: leaver.id });

    const events = await outboxAfter(t.db.sql, mark);
    expect(events).toHaveLength(2);
    for (const e of events) {
      expect(e).toMatchObject({
        type: "group.member_removed",
        organizationId: orgId,
        cause: "system",
      });
      expect(e.payload).toMatchObject({
        groupId: e.groupId,
        organizationMembershipId: leaver.id,
        organizationId: orgId,
        userId: leaver.userId,
      });
    }
    expect(events.map((e) => e.groupId).sort()).toEqual([g1.id, g2.id].sort());

    // Counts and links follow, and the other member is untouched.
    const get = async (g: Group) =>
      (await c.groups.getGroup({ organizationId: orgId, groupId: g.id })).group!;
    expect((await get(g1)).memberCount).toBe(1n);
    expect((await get(g2)).memberCount).toBe(0n);
    expect((await get(g3)).memberCount).toBe(1n);
    for (const g of [g1, g2, g3]) {
      expect(await storedMemberCount(g.id)).toBe(await linkRows(g.id));
      expect((await get(g)).etag).toBe(g.etag);
    }
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM group_memberships WHERE organization_membership_id = ?",
        [leaver.id],
      ),
    ).toBe(0);
    const members = await c.groups.listGroupMembers({
      organizationId: orgId,
      groupId: g1.id,
      order: Order.ASC,
    });
    expect(members.organizationMemberships.map((m) => m.id)).toEqual([stays.id]);
    const ofStays = await c.groups.listGroupsForOrganizationMembership({
      organizationMembershipId: stays.id,
      order: Order.ASC,
    });
    expect(ofStays.groups.map((g) => g.id)).toEqual([g1.id, g3.id]);

    await expectError(
      c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: leaver.id }),
      Code.NotFound,
      "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
    );
    await expectError(
      c.groups.checkGroupMembership({ organizationMembershipId: leaver.id, groupIds: [g1.id] }),
      Code.NotFound,
      "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
    );
    await expectError(
      c.groups.addGroupMember({
        organizationId: orgId,
        groupId: g3.id,
        organizationMembershipId: leaver.id,
      }),
      Code.NotFound,
      "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
    );
    // The groups themselves remain.
    const groups = await c.groups.listGroups({ organizationId: orgId, order: Order.ASC });
    expect(groups.groups.map((g) => g.id)).toEqual([g1.id, g2.id, g3.id]);
  });

  it("DeleteOrganizationMembership records nothing for a group already deleted", async () => {
    const orgId = await newOrg(c);
    const [leaver] = await newMembers(c, orgId, 1);
    const live = await newGroup(c, orgId);
    const doomed = await newGroup(c, orgId);
    await addAll(c, orgId, live.id, [leaver.id]);
    await addAll(c, orgId, doomed.id, [leaver.id]);

    let mark = 0;
    await withReaperPaused(async () => {
      // The deleted group's links may still be waiting for the reaper.
      await c.groups.deleteGroup({ organizationId: orgId, groupId: doomed.id });
      mark = await lastOutboxSeq(t.db.sql);
      await c.orgs.deleteOrganizationMembership({ organizationMembershipId: leaver.id });
    });
    const events = await outboxAfter(t.db.sql, mark);
    expect(events.map((e) => [e.type, e.groupId, e.cause])).toEqual([
      ["group.member_removed", live.id, "system"],
    ]);
    const { group } = await c.groups.getGroup({ organizationId: orgId, groupId: live.id });
    expect(group!.memberCount).toBe(0n);
    await eventually(async () => (await linkRows(doomed.id)) === 0);
  });

  it("DeleteOrganizationMembership of a membership in no group records nothing", async () => {
    const orgId = await newOrg(c);
    const [m] = await newMembers(c, orgId, 1);
    await newGroup(c, orgId);
    const mark = await lastOutboxSeq(t.db.sql);
    await c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id });
    expect(await outboxAfter(t.db.sql, mark)).toEqual([]);
  });

  it("a failed DeleteOrganizationMembership records nothing", async () => {
    const mark = await lastOutboxSeq(t.db.sql);
    await expectError(
      c.orgs.deleteOrganizationMembership({
        organizationMembershipId: `om_${ulid()}`,
      }),
      Code.NotFound,
      "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
    );
    expect(await outboxAfter(t.db.sql, mark)).toEqual([]);
  });

  it("DeleteOrganization hides everything at once, then the reaper removes it all with one system group.deleted per group", async () => {
    const orgId = await newOrg(c);
    const other = await newOrg(c);
    const members = await newMembers(c, orgId, 3);
    const ids = members.map((m) => m.id);
    const g1 = await newGroup(c, orgId, unique("req"));
    const g2 = await newGroup(c, orgId);
    await addAll(c, orgId, g1.id, ids);
    await addAll(c, orgId, g2.id, [ids[0]]);
    const [otherMember] = await newMembers(c, other, 1);
    const otherGroup = await newGroup(c, other);
    await addAll(c, other, otherGroup.id, [otherMember.id]);
    const otherBefore = await rowsOfOrganization(other);

    const mark = await lastOutboxSeq(t.db.sql);
    await withReaperPaused(async () => {
      await c.orgs.deleteOrganization({ organizationId: orgId });

      // Gone from every read at once, before any cleanup ran.
      await expectError(
        c.orgs.getOrganization({ organizationId: orgId }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.orgs.deleteOrganization({ organizationId: orgId }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.groups.getGroup({ organizationId: orgId, groupId: g1.id }),
        Code.NotFound,
      );
      await expectError(c.groups.listGroups({ organizationId: orgId }), Code.NotFound);
      await expectError(
        c.groups.listGroupMembers({ organizationId: orgId, groupId: g1.id }),
        Code.NotFound,
      );
      await expectError(
        c.orgs.getOrganizationMembership({ organizationMembershipId: ids[1] }),
        Code.NotFound,
      );
      await expectError(
        c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: ids[0] }),
        Code.NotFound,
      );
      await expectError(
        c.groups.checkGroupMembership({ organizationMembershipId: ids[0], groupIds: [g1.id] }),
        Code.NotFound,
      );
      await expectError(
        c.groups.addGroupMember({
          organizationId: orgId,
          groupId: g2.id,
          organizationMembershipId: ids[2],
        }),
        Code.NotFound,
      );
      await expectError(
        c.groups.createGroup({ organizationId: orgId, name: "Late" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      const orgs = await c.orgs.listOrganizations({ limit: 1000 });
      expect(orgs.organizations.map((o) => o.id)).not.toContain(orgId);
    });

    await waitUntilGone(orgId);

    const events = await outboxAfter(t.db.sql, mark, orgId);
    expect(events.map((e) => [e.type, e.cause])).toEqual([
      ["group.deleted", "system"],
      ["group.deleted", "system"],
    ]);
    expect(events.map((e) => e.groupId).sort()).toEqual([g1.id, g2.id].sort());
    for (const e of events) {
      expect(e.payload.group).toMatchObject({ id: e.groupId, organizationId: orgId });
    }

    // The other organization is untouched.
    expect(await rowsOfOrganization(other)).toEqual(otherBefore);
    expect(await outboxAfter(t.db.sql, mark, other)).toEqual([]);
    const { group } = await c.groups.getGroup({ organizationId: other, groupId: otherGroup.id });
    expect(group!.memberCount).toBe(1n);
  });
});

describe("DeleteOrganization of a larger organization, in bounded chunks", () => {
  it("removes ~2,000 group memberships, 5 groups and 600 memberships, and nothing of other organizations", async () => {
    const c = t.clients("grpc");
    const orgId = await newOrg(c);
    const other = await newOrg(c);

    // The organization to delete: 600 memberships, 5 groups of 400 (2,000 links).
    const members = await newMembers(c, orgId, 600, "big-user");
    const ids = members.map((m) => m.id);
    const groups: Group[] = [];
    for (let i = 0; i < 5; i++) groups.push(await newGroup(c, orgId, `req-${i}`));
    for (let i = 0; i < 5; i++) {
      await addAll(c, orgId, groups[i].id, ids.slice(i * 50, i * 50 + 400));
    }
    expect((await rowsOfOrganization(orgId)).groupMemberships).toBe(2000);

    // Another organization sharing user ids with it.
    const otherMembers = await newMembers(c, other, 30, "big-user");
    const otherGroups = [await newGroup(c, other, "req-0"), await newGroup(c, other, "req-1")];
    await addAll(
      c,
      other,
      otherGroups[0].id,
      otherMembers.map((m) => m.id),
    );
    await addAll(
      c,
      other,
      otherGroups[1].id,
      otherMembers.slice(0, 10).map((m) => m.id),
    );
    const otherBefore = await rowsOfOrganization(other);
    expect(otherBefore).toEqual({
      organizations: 1,
      memberships: 30,
      groups: 2,
      groupMemberships: 40,
      idempotencyKeys: 2,
    });

    const beforeGroupDelete = await lastOutboxSeq(t.db.sql);
    let mark = 0;
    await withReaperPaused(async () => {
      // One group is deleted by the API just before: it gets no second group.deleted.
      await c.groups.deleteGroup({ organizationId: orgId, groupId: groups[4].id });
      mark = await lastOutboxSeq(t.db.sql);
      await c.orgs.deleteOrganization({ organizationId: orgId });

      await expectError(
        c.orgs.getOrganization({ organizationId: orgId }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.groups.getGroup({ organizationId: orgId, groupId: groups[0].id }),
        Code.NotFound,
      );
      await expectError(
        c.orgs.getOrganizationMembership({ organizationMembershipId: ids[599] }),
        Code.NotFound,
      );
      const byUser = await c.orgs.listOrganizationMemberships({ userId: "big-user-5" });
      expect(byUser.organizationMemberships.map((m) => m.organizationId)).toEqual([other]);
    });

    await waitUntilGone(orgId);

    // Every link went in a chunk of at most 200 rows from at most 2 groups (the
    // reaper options above), none with the unbounded delete of a group chunk.
    const ours = new Set(groups.map((g) => g.id));
    const chunks = linkChunks.filter((c) => c.groupIds.every((id) => ours.has(id)));
    expect(chunks.reduce((n, c) => n + c.deleted, 0)).toBe(2000);
    expect(Math.max(...chunks.map((c) => c.deleted))).toBe(200);
    expect(Math.max(...chunks.map((c) => c.groupIds.length))).toBe(2);

    const all = await outboxAfter(t.db.sql, beforeGroupDelete, orgId);
    expect(all[0]).toMatchObject({ type: "group.deleted", groupId: groups[4].id, cause: "api" });
    const cascade = await outboxAfter(t.db.sql, mark, orgId);
    expect(cascade.every((e) => e.type === "group.deleted" && e.cause === "system")).toBe(true);
    expect(cascade.map((e) => e.groupId).sort()).toEqual(
      groups
        .slice(0, 4)
        .map((g) => g.id)
        .sort(),
    );
    expect(all).toHaveLength(1 + cascade.length);

    // Nothing of the other organization moved.
    expect(await rowsOfOrganization(other)).toEqual(otherBefore);
    expect(await outboxAfter(t.db.sql, mark, other)).toEqual([]);
    for (const [g, n] of [
      [otherGroups[0], 30n],
      [otherGroups[1], 10n],
    ] as const) {
      const { group } = await c.groups.getGroup({ organizationId: other, groupId: g.id });
      expect(group!.memberCount).toBe(n);
    }
    const listed = await c.orgs.listOrganizationMemberships({ organizationId: other, limit: 100 });
    expect(listed.organizationMemberships).toHaveLength(30);
  });
});
