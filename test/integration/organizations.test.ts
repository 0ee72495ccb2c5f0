import { Code } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import {
  OrganizationMembershipStatus,
  type Organization,
  type OrganizationMembership,
} from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { DOORS, startTestServer, type Clients, type TestServer } from "../support/server.js";
import { badFields, expectError, expectMillisecondTimestamp, ms } from "../support/assertions.js";
import { lastOutboxSeq } from "../support/outbox.js";

const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const ORG_ID = new RegExp(`^org_${ULID}$`);
const OM_ID = new RegExp(`^om_${ULID}$`);

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

async function eventTypesAfter(since: number): Promise<string[]> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(
    "SELECT type FROM events WHERE outbox_seq > ? ORDER BY outbox_seq",
    [since],
  );
  return rows.map((r) => r.type as string);
}

async function row(table: string, id: string): Promise<RowDataPacket | undefined> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(`SELECT * FROM ${table} WHERE id = ?`, [id]);
  return rows[0];
}

let seq = 0;
const unique = (prefix: string) => `${prefix}-${++seq}-${Date.now().toString(36)}`;
const unknownId = (prefix: "org" | "om" | "group") => `${prefix}_${ulid()}`;

async function newOrg(c: Clients, externalId = ""): Promise<Organization> {
  const { organization } = await c.orgs.createOrganization({ name: unique("Org"), externalId });
  return organization!;
}

async function newMember(
  c: Clients,
  organizationId: string,
  userId = unique("user"),
  status = OrganizationMembershipStatus.UNSPECIFIED,
): Promise<OrganizationMembership> {
  const { organizationMembership } = await c.orgs.createOrganizationMembership({
    organizationId,
    userId,
    status,
  });
  return organizationMembership!;
}

// ---------------------------------------------------------------------------
// Tests, through every front door
// ---------------------------------------------------------------------------

describe.each(DOORS)("OrganizationsService over %s", (door) => {
  let c: Clients;
  beforeAll(() => {
    c = t.clients(door);
  });

  describe("CreateOrganization", () => {
    it("creates an organization with a trimmed name and an external id", async () => {
      const externalId = unique("ext");
      const { organization } = await c.orgs.createOrganization({
        name: "  Acme Corp ",
        externalId,
      });
      const o = organization!;
      expect(o.id).toMatch(ORG_ID);
      expect(o.name).toBe("Acme Corp");
      expect(o.externalId).toBe(externalId);
      expectMillisecondTimestamp(o.createdAt);
      expectMillisecondTimestamp(o.updatedAt);
      expect(ms(o.updatedAt)).toBe(ms(o.createdAt));
      expect(await row("organizations", o.id)).toMatchObject({
        name: "Acme Corp",
        external_id: externalId,
        deleted_at: null,
      });
      expect((await c.orgs.getOrganization({ organizationId: o.id })).organization).toEqual(o);
    });

    it("allows many organizations without an external id", async () => {
      const a = await newOrg(c);
      const b = await newOrg(c);
      expect(a.externalId).toBe("");
      expect(b.externalId).toBe("");
      expect(a.id).not.toBe(b.id);
      expect((await row("organizations", a.id))!.external_id).toBeNull();
    });

    it("answers ALREADY_EXISTS for a taken external id", async () => {
      const externalId = unique("ext");
      const first = await newOrg(c, externalId);
      await expectError(
        c.orgs.createOrganization({ name: "Copycat", externalId }),
        Code.AlreadyExists,
        "ORGANIZATION_EXTERNAL_ID_TAKEN",
      );
      const [rows] = await t.db.sql.query<RowDataPacket[]>(
        "SELECT id FROM organizations WHERE external_id = ?",
        [externalId],
      );
      expect(rows.map((r) => r.id)).toEqual([first.id]);
    });

    it("rejects a blank or over-long name", async () => {
      for (const name of ["", "   ", "x".repeat(257)]) {
        const err = await expectError(
          c.orgs.createOrganization({ name }),
          Code.InvalidArgument,
          "INVALID_FIELDS",
        );
        expect(badFields(err)).toEqual(["name"]);
      }
    });
  });

  describe("GetOrganization", () => {
    it("reads an organization, NOT_FOUND when unknown, INVALID_ARGUMENT when malformed", async () => {
      const o = await newOrg(c, unique("ext"));
      expect((await c.orgs.getOrganization({ organizationId: o.id })).organization).toEqual(o);
      await expectError(
        c.orgs.getOrganization({ organizationId: unknownId("org") }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      const err = await expectError(
        c.orgs.getOrganization({ organizationId: "org_123" }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err)).toEqual(["organization_id"]);
    });
  });

  describe("ListOrganizations", () => {
    it("lists by creation in both orders, across pages", async () => {
      const marker = await newOrg(c);
      const created = [await newOrg(c), await newOrg(c), await newOrg(c)];
      const ids = created.map((o) => o.id);

      // Newest first by default: the three just created lead the list.
      const desc = await c.orgs.listOrganizations({ limit: 3 });
      expect(desc.organizations.map((o) => o.id)).toEqual([...ids].reverse());
      expect(desc.organizations[0]).toEqual(created[2]);
      expect(desc.listMetadata!.before).toBe("");
      expect(desc.listMetadata!.after).toBe(ids[0]);
      const next = await c.orgs.listOrganizations({ limit: 1, after: desc.listMetadata!.after });
      expect(next.organizations.map((o) => o.id)).toEqual([marker.id]);
      expect(next.listMetadata!.before).toBe(marker.id);
      const back = await c.orgs.listOrganizations({ limit: 3, before: marker.id });
      expect(back.organizations.map((o) => o.id)).toEqual([...ids].reverse());

      // Oldest first after the marker: exactly the three, and no further page.
      const asc = await c.orgs.listOrganizations({ order: Order.ASC, after: marker.id });
      expect(asc.organizations.map((o) => o.id)).toEqual(ids);
      expect(asc.listMetadata!.after).toBe("");
      expect(asc.listMetadata!.before).toBe(ids[0]);
    });

    it("rejects an out-of-range limit and an unknown cursor", async () => {
      for (const limit of [-1, 1001]) {
        const err = await expectError(
          c.orgs.listOrganizations({ limit }),
          Code.InvalidArgument,
          "INVALID_FIELDS",
        );
        expect(badFields(err)).toEqual(["limit"]);
      }
      const err = await expectError(
        c.orgs.listOrganizations({ after: unknownId("org") }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err)).toEqual(["after"]);
    });
  });

  describe("UpdateOrganization", () => {
    it("changes only the fields present; an empty external id clears it", async () => {
      const ext = unique("ext");
      const o = await newOrg(c, ext);

      const { organization: renamed } = await c.orgs.updateOrganization({
        organizationId: o.id,
        name: " Renamed ",
      });
      expect(renamed).toMatchObject({ id: o.id, name: "Renamed", externalId: ext });
      expect(ms(renamed!.createdAt)).toBe(ms(o.createdAt));
      expect(ms(renamed!.updatedAt)).toBeGreaterThanOrEqual(ms(o.updatedAt));

      const ext2 = unique("ext");
      const { organization: reExt } = await c.orgs.updateOrganization({
        organizationId: o.id,
        externalId: ext2,
      });
      expect(reExt).toMatchObject({ name: "Renamed", externalId: ext2 });

      const { organization: cleared } = await c.orgs.updateOrganization({
        organizationId: o.id,
        externalId: "",
      });
      expect(cleared).toMatchObject({ name: "Renamed", externalId: "" });
      expect((await row("organizations", o.id))!.external_id).toBeNull();

      const { organization: untouched } = await c.orgs.updateOrganization({ organizationId: o.id });
      expect(untouched).toEqual(cleared);
      expect((await c.orgs.getOrganization({ organizationId: o.id })).organization).toEqual(
        cleared,
      );

      // The old external id is free again.
      const reuse = await newOrg(c, ext);
      expect(reuse.externalId).toBe(ext);
    });

    it("answers ALREADY_EXISTS for another organization's external id, NOT_FOUND when unknown", async () => {
      const ext = unique("ext");
      await newOrg(c, ext);
      const o = await newOrg(c, unique("ext"));
      await expectError(
        c.orgs.updateOrganization({ organizationId: o.id, externalId: ext }),
        Code.AlreadyExists,
        "ORGANIZATION_EXTERNAL_ID_TAKEN",
      );
      expect((await c.orgs.getOrganization({ organizationId: o.id })).organization).toEqual(o);
      await expectError(
        c.orgs.updateOrganization({ organizationId: unknownId("org"), name: "X" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      const err = await expectError(
        c.orgs.updateOrganization({ organizationId: o.id, name: "" }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err)).toEqual(["name"]);
    });
  });

  describe("DeleteOrganization", () => {
    it("makes the organization NOT_FOUND at once, everywhere", async () => {
      const o = await newOrg(c);
      const m = await newMember(c, o.id);
      await c.orgs.deleteOrganization({ organizationId: o.id });

      await expectError(
        c.orgs.getOrganization({ organizationId: o.id }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.orgs.deleteOrganization({ organizationId: o.id }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.orgs.updateOrganization({ organizationId: o.id, name: "Zombie" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.orgs.createOrganizationMembership({ organizationId: o.id, userId: "late" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.groups.createGroup({ organizationId: o.id, name: "Late" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      await expectError(
        c.orgs.getOrganizationMembership({ organizationMembershipId: m.id }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      const listed = await c.orgs.listOrganizations({ limit: 1000 });
      expect(listed.organizations.map((x) => x.id)).not.toContain(o.id);
      const byUser = await c.orgs.listOrganizationMemberships({ userId: m.userId });
      expect(byUser.organizationMemberships).toEqual([]);
      await expectError(
        c.orgs.deleteOrganization({ organizationId: unknownId("org") }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
    });
  });

  describe("CreateOrganizationMembership", () => {
    it("creates an ACTIVE membership by default, or with the status given", async () => {
      const o = await newOrg(c);
      const { organizationMembership } = await c.orgs.createOrganizationMembership({
        organizationId: o.id,
        userId: "user_01",
      });
      const m = organizationMembership!;
      expect(m.id).toMatch(OM_ID);
      expect(m).toMatchObject({
        organizationId: o.id,
        userId: "user_01",
        status: OrganizationMembershipStatus.ACTIVE,
      });
      expectMillisecondTimestamp(m.createdAt);
      expectMillisecondTimestamp(m.updatedAt);
      expect(await row("organization_memberships", m.id)).toMatchObject({
        organization_id: o.id,
        user_id: "user_01",
        status: "active",
      });

      const pending = await newMember(c, o.id, "user_02", OrganizationMembershipStatus.PENDING);
      expect(pending.status).toBe(OrganizationMembershipStatus.PENDING);
      const inactive = await newMember(c, o.id, "user_03", OrganizationMembershipStatus.INACTIVE);
      expect(inactive.status).toBe(OrganizationMembershipStatus.INACTIVE);
    });

    it("answers ALREADY_EXISTS for the same user twice in one organization, not across organizations", async () => {
      const a = await newOrg(c);
      const b = await newOrg(c);
      const first = await newMember(c, a.id, "same-user");
      await expectError(
        c.orgs.createOrganizationMembership({ organizationId: a.id, userId: "same-user" }),
        Code.AlreadyExists,
        "ORGANIZATION_MEMBERSHIP_ALREADY_EXISTS",
      );
      const [rows] = await t.db.sql.query<RowDataPacket[]>(
        "SELECT id FROM organization_memberships WHERE organization_id = ?",
        [a.id],
      );
      expect(rows.map((r) => r.id)).toEqual([first.id]);
      const inB = await newMember(c, b.id, "same-user");
      expect(inB.organizationId).toBe(b.id);
    });

    it("answers NOT_FOUND for an unknown organization and INVALID_ARGUMENT for a bad user id", async () => {
      await expectError(
        c.orgs.createOrganizationMembership({ organizationId: unknownId("org"), userId: "u" }),
        Code.NotFound,
        "ORGANIZATION_NOT_FOUND",
      );
      const o = await newOrg(c);
      for (const userId of ["", "u".repeat(129)]) {
        const err = await expectError(
          c.orgs.createOrganizationMembership({ organizationId: o.id, userId }),
          Code.InvalidArgument,
          "INVALID_FIELDS",
        );
        expect(badFields(err)).toEqual(["user_id"]);
      }
    });
  });

  describe("GetOrganizationMembership", () => {
    it("reads a membership and answers NOT_FOUND for an unknown one", async () => {
      const o = await newOrg(c);
      const m = await newMember(c, o.id, unique("user"), OrganizationMembershipStatus.PENDING);
      const { organizationMembership } = await c.orgs.getOrganizationMembership({
        organizationMembershipId: m.id,
      });
      expect(organizationMembership).toEqual(m);
      await expectError(
        c.orgs.getOrganizationMembership({ organizationMembershipId: unknownId("om") }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
    });
  });

  describe("ListOrganizationMemberships", () => {
    it("filters by organization, by user, or both", async () => {
      const a = await newOrg(c);
      const b = await newOrg(c);
      const user = unique("shared-user");
      const a1 = await newMember(c, a.id, user);
      const a2 = await newMember(c, a.id);
      const a3 = await newMember(c, a.id);
      const b1 = await newMember(c, b.id, user);
      await newMember(c, b.id);

      const byOrg = await c.orgs.listOrganizationMemberships({ organizationId: a.id });
      expect(byOrg.organizationMemberships).toEqual([a3, a2, a1]);
      const asc = await c.orgs.listOrganizationMemberships({
        organizationId: a.id,
        order: Order.ASC,
        limit: 2,
      });
      expect(asc.organizationMemberships.map((m) => m.id)).toEqual([a1.id, a2.id]);
      expect(asc.listMetadata!.after).toBe(a2.id);
      const asc2 = await c.orgs.listOrganizationMemberships({
        organizationId: a.id,
        order: Order.ASC,
        limit: 2,
        after: a2.id,
      });
      expect(asc2.organizationMemberships.map((m) => m.id)).toEqual([a3.id]);
      expect(asc2.listMetadata!.after).toBe("");

      const byUser = await c.orgs.listOrganizationMemberships({ userId: user });
      expect(byUser.organizationMemberships.map((m) => m.id)).toEqual([b1.id, a1.id]);

      const both = await c.orgs.listOrganizationMemberships({ organizationId: b.id, userId: user });
      expect(both.organizationMemberships).toEqual([b1]);
    });

    it("requires a filter and rejects a cursor from another list", async () => {
      const err = await expectError(
        c.orgs.listOrganizationMemberships({}),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err).length).toBeGreaterThan(0);
      const a = await newOrg(c);
      const b = await newOrg(c);
      const foreign = await newMember(c, b.id);
      const err2 = await expectError(
        c.orgs.listOrganizationMemberships({ organizationId: a.id, after: foreign.id }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err2)).toEqual(["after"]);
    });
  });

  describe("UpdateOrganizationMembership", () => {
    it("changes the status and leaves the group memberships alone", async () => {
      const o = await newOrg(c);
      const m = await newMember(c, o.id);
      const { group } = await c.groups.createGroup({ organizationId: o.id, name: "Team" });
      await c.groups.addGroupMember({
        organizationId: o.id,
        groupId: group!.id,
        organizationMembershipId: m.id,
      });
      const mark = await lastOutboxSeq(t.db.sql);

      const { organizationMembership: updated } = await c.orgs.updateOrganizationMembership({
        organizationMembershipId: m.id,
        status: OrganizationMembershipStatus.INACTIVE,
      });
      expect(updated).toMatchObject({
        id: m.id,
        userId: m.userId,
        organizationId: o.id,
        status: OrganizationMembershipStatus.INACTIVE,
      });
      expect(ms(updated!.createdAt)).toBe(ms(m.createdAt));
      expect(ms(updated!.updatedAt)).toBeGreaterThanOrEqual(ms(m.updatedAt));
      expect(
        (await c.orgs.getOrganizationMembership({ organizationMembershipId: m.id }))
          .organizationMembership,
      ).toEqual(updated);
      expect((await row("organization_memberships", m.id))!.status).toBe("inactive");

      // Still in its group, shown with its new status; no group event.
      const members = await c.groups.listGroupMembers({
        organizationId: o.id,
        groupId: group!.id,
      });
      expect(members.organizationMemberships).toEqual([updated]);
      const check = await c.groups.checkGroupMembership({
        organizationMembershipId: m.id,
        groupIds: [group!.id],
      });
      expect(check.groupIds).toEqual([group!.id]);
      const { group: after } = await c.groups.getGroup({
        organizationId: o.id,
        groupId: group!.id,
      });
      expect(after!.memberCount).toBe(1n);
      expect(await eventTypesAfter(mark)).toEqual([]);

      const { organizationMembership: back } = await c.orgs.updateOrganizationMembership({
        organizationMembershipId: m.id,
        status: OrganizationMembershipStatus.ACTIVE,
      });
      expect(back!.status).toBe(OrganizationMembershipStatus.ACTIVE);
    });

    it("requires a status and answers NOT_FOUND for an unknown membership", async () => {
      const o = await newOrg(c);
      const m = await newMember(c, o.id);
      const err = await expectError(
        c.orgs.updateOrganizationMembership({
          organizationMembershipId: m.id,
          status: OrganizationMembershipStatus.UNSPECIFIED,
        }),
        Code.InvalidArgument,
        "INVALID_FIELDS",
      );
      expect(badFields(err)).toEqual(["status"]);
      await expectError(
        c.orgs.updateOrganizationMembership({
          organizationMembershipId: unknownId("om"),
          status: OrganizationMembershipStatus.ACTIVE,
        }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
    });
  });

  describe("DeleteOrganizationMembership", () => {
    it("deletes the membership; it is NOT_FOUND afterwards and the user may rejoin", async () => {
      const o = await newOrg(c);
      const m = await newMember(c, o.id, "leaver");
      const stays = await newMember(c, o.id);
      await c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id });

      await expectError(
        c.orgs.getOrganizationMembership({ organizationMembershipId: m.id }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      await expectError(
        c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id }),
        Code.NotFound,
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      expect(await row("organization_memberships", m.id)).toBeUndefined();
      const listed = await c.orgs.listOrganizationMemberships({ organizationId: o.id });
      expect(listed.organizationMemberships).toEqual([stays]);

      const again = await newMember(c, o.id, "leaver");
      expect(again.id).not.toBe(m.id);
    });
  });
});
