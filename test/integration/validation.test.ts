import { Code, ConnectError } from "@connectrpc/connect";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import { OrganizationMembershipStatus } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import {
  badFieldsOfConnectJson,
  reasonOfConnectJson,
  type ConnectErrorJson,
} from "../support/assertions.js";
import { DOORS, startTestServer, type Clients, type TestServer } from "../support/server.js";

/**
 * Bad input (SPEC §2–§3): INVALID_ARGUMENT with a google.rpc.BadRequest that
 * names every bad field and a google.rpc.ErrorInfo reason, never INTERNAL or
 * UNKNOWN, the same on every front door, and nothing written. Well-formed but
 * unknown or foreign ids are NOT_FOUND.
 */

let t: TestServer;
// Fixtures: two organizations, each with a membership and a group.
let orgA: string;
let orgB: string;
let mA: string;
let mA2: string;
let mA3: string;
let mB: string;
let gA: string;
let gB: string;

const TABLES = [
  "organizations",
  "organization_memberships",
  "org_groups",
  "group_memberships",
  "events",
  "idempotency_keys",
] as const;

async function rowCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of TABLES) {
    const [rows] = await t.db.sql.query(`SELECT COUNT(*) AS n FROM \`${table}\``);
    out[table] = Number((rows as { n: number | string }[])[0].n);
  }
  return out;
}

const reasonOf = (err: ConnectError) => err.findDetails(ErrorInfoSchema)[0]?.reason;
const badFields = (err: ConnectError) =>
  err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));

/** Runs `call`, expects it to fail with `code` and to write nothing; returns the error. */
async function expectFailure(call: () => Promise<unknown>, code: Code): Promise<ConnectError> {
  const before = await rowCounts();
  const err = await call().then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!err) throw new Error(`call succeeded, expected ${Code[code]}`);
  expect(Code[err.code], `${err.message}`).toBe(Code[code]);
  expect(reasonOf(err), "google.rpc.ErrorInfo.reason").toMatch(/^[A-Z][A-Z0-9_]*$/);
  expect(await rowCounts(), "no rows written").toEqual(before);
  return err;
}

/** A ULID-shaped string: 26 Crockford base32 characters. */
const U = () => ulid();
const unknown = {
  org: () => `org_${U()}`,
  om: () => `om_${U()}`,
  group: () => `group_${U()}`,
};

/** Ids of the wrong shape for a prefix, with a well-formed id of another kind. */
function malformedIds(prefix: string, otherKind: () => string): [string, string][] {
  const lower = U().toLowerCase();
  return [
    ["empty", ""],
    ["too short", `${prefix}_123`],
    ["lower-case ULID", `${prefix}_${lower}`],
    ["wrong prefix", otherKind()],
    ["ULID with U", `${prefix}_${U().slice(0, 25)}U`],
    ["ULID with I", `${prefix}_${U().slice(0, 12)}I${U().slice(0, 13)}`],
    ["27 characters", `${prefix}_${U()}0`],
    ["no prefix", U()],
  ];
}

const FORBIDDEN_CHARS: [string, string][] = [
  ["NUL", "\u0000"],
  ["BEL (C0)", "\u0007"],
  ["NEL (C1)", "\u0085"],
  ["RLO (bidi override)", "\u202E"],
  ["LRI (bidi isolate)", "\u2066"],
];

const EMOJI = "\u{1F600}"; // one code point, two UTF-16 units, four UTF-8 bytes

/** One invalid request: the fields its BadRequest must name (exactly, as a set). */
interface InvalidCase {
  name: string;
  call: (c: Clients) => Promise<unknown>;
  fields: string[];
}

function invalidCases(): InvalidCase[] {
  const cases: InvalidCase[] = [];
  const add = (name: string, fields: string[], call: InvalidCase["call"]) =>
    cases.push({ name, call, fields });

  // --- names -------------------------------------------------------------
  const badNames: [string, string][] = [
    ["empty", ""],
    ["whitespace only", "   \u3000 "],
    ["257 characters", "a".repeat(257)],
    ["257 emoji", EMOJI.repeat(257)],
    ...FORBIDDEN_CHARS.map(([n, ch]): [string, string] => [`containing ${n}`, `Eng${ch}ineering`]),
    ["ending in NUL", "Finance\u0000"],
    // Control characters at the ends are refused, not trimmed away like spaces.
    ["wrapped in a tab and CR LF", "\tEngineering\r\n"],
    ["ending in a vertical tab", "Engineering\u000b"],
  ];
  for (const [what, name] of badNames) {
    add(`CreateGroup name ${what}`, ["name"], (c) =>
      c.groups.createGroup({ organizationId: orgA, name }),
    );
    add(`CreateOrganization name ${what}`, ["name"], (c) => c.orgs.createOrganization({ name }));
    add(`UpdateGroup name ${what}`, ["name"], (c) =>
      c.groups.updateGroup({ organizationId: orgA, groupId: gA, name }),
    );
  }
  add("UpdateOrganization name empty", ["name"], (c) =>
    c.orgs.updateOrganization({ organizationId: orgA, name: " " }),
  );
  add("CreateGroup description 151 characters", ["description"], (c) =>
    c.groups.createGroup({ organizationId: orgA, name: "ok", description: "d".repeat(151) }),
  );
  add("CreateGroup description 151 emoji", ["description"], (c) =>
    c.groups.createGroup({ organizationId: orgA, name: "ok", description: EMOJI.repeat(151) }),
  );
  add("UpdateGroup description 151 characters", ["description"], (c) =>
    c.groups.updateGroup({ organizationId: orgA, groupId: gA, description: "d".repeat(151) }),
  );

  // --- caller-owned identifiers -------------------------------------------
  add("CreateOrganizationMembership user_id 129 characters", ["user_id"], (c) =>
    c.orgs.createOrganizationMembership({ organizationId: orgA, userId: "u".repeat(129) }),
  );
  add("CreateOrganizationMembership user_id empty", ["user_id"], (c) =>
    c.orgs.createOrganizationMembership({ organizationId: orgA, userId: "" }),
  );
  add("ListOrganizationMemberships user_id 129 characters", ["user_id"], (c) =>
    c.orgs.listOrganizationMemberships({ userId: "u".repeat(129) }),
  );
  add("CreateOrganization external_id 129 characters", ["external_id"], (c) =>
    c.orgs.createOrganization({ name: "ok", externalId: "e".repeat(129) }),
  );
  add("UpdateOrganization external_id 129 characters", ["external_id"], (c) =>
    c.orgs.updateOrganization({ organizationId: orgA, externalId: "e".repeat(129) }),
  );

  // --- every bad field at once ---------------------------------------------
  add("CreateGroup bad organization_id and empty name", ["organization_id", "name"], (c) =>
    c.groups.createGroup({ organizationId: "org_123", name: "" }),
  );
  add(
    "CreateGroup bad organization_id, name and description",
    ["organization_id", "name", "description"],
    (c) =>
      c.groups.createGroup({
        organizationId: gA,
        name: "a\u202Eb",
        description: "d".repeat(151),
      }),
  );
  add("CreateOrganization empty name and long external_id", ["name", "external_id"], (c) =>
    c.orgs.createOrganization({ name: "", externalId: "e".repeat(129) }),
  );
  add(
    "CreateOrganizationMembership bad organization_id, user_id and status",
    ["organization_id", "user_id", "status"],
    (c) =>
      c.orgs.createOrganizationMembership({
        organizationId: "org_123",
        userId: "",
        status: 9 as OrganizationMembershipStatus,
      }),
  );
  add("UpdateGroup bad group_id, name and description", ["group_id", "name", "description"], (c) =>
    c.groups.updateGroup({
      organizationId: orgA,
      groupId: "group_1",
      name: "",
      description: "d".repeat(151),
    }),
  );
  add(
    "AddGroupMember with all three ids malformed",
    ["organization_id", "group_id", "organization_membership_id"],
    (c) =>
      c.groups.addGroupMember({
        organizationId: mA,
        groupId: orgA,
        organizationMembershipId: gA,
      }),
  );
  add(
    "ListGroups bad organization_id, limit and order",
    ["organization_id", "limit", "order"],
    (c) => c.groups.listGroups({ organizationId: "", limit: -1, order: 7 as Order }),
  );

  // --- malformed ids, each RPC's id fields -----------------------------------
  /** Adds the case "<rpc> <field> <what>", which names only `field`. */
  const addBadId = (field: string, what: string) => (rpc: string, call: InvalidCase["call"]) =>
    add(`${rpc} ${field} ${what}`, [field], call);
  for (const [what, id] of malformedIds("org", () => gA)) {
    const addOrg = addBadId("organization_id", what);
    addOrg("GetOrganization", (c) => c.orgs.getOrganization({ organizationId: id }));
    addOrg("CreateGroup", (c) => c.groups.createGroup({ organizationId: id, name: "ok" }));
    addOrg("GetGroup", (c) => c.groups.getGroup({ organizationId: id, groupId: gA }));
    addOrg("CreateOrganizationMembership", (c) =>
      c.orgs.createOrganizationMembership({ organizationId: id, userId: "someone" }),
    );
  }
  for (const [what, id] of malformedIds("group", () => orgA)) {
    const addGroup = addBadId("group_id", what);
    addGroup("GetGroup", (c) => c.groups.getGroup({ organizationId: orgA, groupId: id }));
    addGroup("DeleteGroup", (c) => c.groups.deleteGroup({ organizationId: orgA, groupId: id }));
    addGroup("ListGroupMembers", (c) =>
      c.groups.listGroupMembers({ organizationId: orgA, groupId: id }),
    );
  }
  for (const [what, id] of malformedIds("om", () => gA)) {
    const addOm = addBadId("organization_membership_id", what);
    addOm("AddGroupMember", (c) =>
      c.groups.addGroupMember({ organizationId: orgA, groupId: gA, organizationMembershipId: id }),
    );
    addOm("RemoveGroupMember", (c) =>
      c.groups.removeGroupMember({
        organizationId: orgA,
        groupId: gA,
        organizationMembershipId: id,
        allowMissing: true,
      }),
    );
    addOm("GetOrganizationMembership", (c) =>
      c.orgs.getOrganizationMembership({ organizationMembershipId: id }),
    );
    addOm("DeleteOrganizationMembership", (c) =>
      c.orgs.deleteOrganizationMembership({ organizationMembershipId: id }),
    );
    addOm("ListGroupsForOrganizationMembership", (c) =>
      c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: id }),
    );
    addOm("CheckGroupMembership", (c) =>
      c.groups.checkGroupMembership({ organizationMembershipId: id, groupIds: [gA] }),
    );
  }

  // --- limits -------------------------------------------------------------
  for (const limit of [-1, 1001]) {
    add(`ListOrganizations limit ${limit}`, ["limit"], (c) => c.orgs.listOrganizations({ limit }));
    add(`ListOrganizationMemberships limit ${limit}`, ["limit"], (c) =>
      c.orgs.listOrganizationMemberships({ organizationId: orgA, limit }),
    );
    add(`ListGroups limit ${limit}`, ["limit"], (c) =>
      c.groups.listGroups({ organizationId: orgA, limit }),
    );
    add(`ListGroupMembers limit ${limit}`, ["limit"], (c) =>
      c.groups.listGroupMembers({ organizationId: orgA, groupId: gA, limit }),
    );
    add(`ListGroupsForOrganizationMembership limit ${limit}`, ["limit"], (c) =>
      c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: mA, limit }),
    );
  }

  // --- unknown enum values --------------------------------------------------
  add("ListGroups order 7", ["order"], (c) =>
    c.groups.listGroups({ organizationId: orgA, order: 7 as Order }),
  );
  add("ListOrganizations order 3", ["order"], (c) =>
    c.orgs.listOrganizations({ order: 3 as Order }),
  );
  add("ListGroupMembers order -1", ["order"], (c) =>
    c.groups.listGroupMembers({ organizationId: orgA, groupId: gA, order: -1 as Order }),
  );
  add("CreateOrganizationMembership status 9", ["status"], (c) =>
    c.orgs.createOrganizationMembership({
      organizationId: orgA,
      userId: "new-user",
      status: 9 as OrganizationMembershipStatus,
    }),
  );
  add("UpdateOrganizationMembership status 9", ["status"], (c) =>
    c.orgs.updateOrganizationMembership({
      organizationMembershipId: mA,
      status: 9 as OrganizationMembershipStatus,
    }),
  );
  add("UpdateOrganizationMembership status UNSPECIFIED", ["status"], (c) =>
    c.orgs.updateOrganizationMembership({
      organizationMembershipId: mA,
      status: OrganizationMembershipStatus.UNSPECIFIED,
    }),
  );

  // --- batches --------------------------------------------------------------
  const tooMany = () => Array.from({ length: 1001 }, () => unknown.om());
  for (const [rpc, run] of [
    [
      "BatchAddGroupMembers",
      (c: Clients, ids: string[], groupId = gA, organizationId = orgA) =>
        c.groups.batchAddGroupMembers({ organizationId, groupId, organizationMembershipIds: ids }),
    ],
    [
      "BatchRemoveGroupMembers",
      (c: Clients, ids: string[], groupId = gA, organizationId = orgA) =>
        c.groups.batchRemoveGroupMembers({
          organizationId,
          groupId,
          organizationMembershipIds: ids,
        }),
    ],
  ] as const) {
    add(`${rpc} with 0 ids`, ["organization_membership_ids"], (c) => run(c, []));
    add(`${rpc} with 1001 ids`, ["organization_membership_ids"], (c) => run(c, tooMany()));
    add(`${rpc} with one malformed id among good ones`, ["organization_membership_ids[2]"], (c) =>
      run(c, [mA, mA2, "om_123", mA3]),
    );
    add(`${rpc} with a wrong-kind id among good ones`, ["organization_membership_ids[0]"], (c) =>
      run(c, [gA, mA2]),
    );
    add(
      `${rpc} with 0 ids and bad organization_id and group_id`,
      ["organization_id", "group_id", "organization_membership_ids"],
      (c) => run(c, [], "group_x", "org_x"),
    );
  }
  add("CheckGroupMembership with 101 group ids", ["group_ids"], (c) =>
    c.groups.checkGroupMembership({
      organizationMembershipId: mA,
      groupIds: Array.from({ length: 101 }, () => unknown.group()),
    }),
  );
  add("CheckGroupMembership with 0 group ids", ["group_ids"], (c) =>
    c.groups.checkGroupMembership({ organizationMembershipId: mA, groupIds: [] }),
  );
  add("CheckGroupMembership with a malformed group id", ["group_ids[1]"], (c) =>
    c.groups.checkGroupMembership({ organizationMembershipId: mA, groupIds: [gA, orgA, gB] }),
  );

  // --- pagination cursors ---------------------------------------------------
  add("ListGroups with a malformed `after`", ["after"], (c) =>
    c.groups.listGroups({ organizationId: orgA, after: "group_123" }),
  );
  add("ListGroups with an `after` of another kind", ["after"], (c) =>
    c.groups.listGroups({ organizationId: orgA, after: mA }),
  );
  add("ListGroups with an unknown `before`", ["before"], (c) =>
    c.groups.listGroups({ organizationId: orgA, before: unknown.group() }),
  );
  add("ListGroups with a `before` of another organization", ["before"], (c) =>
    c.groups.listGroups({ organizationId: orgA, before: gB }),
  );
  add("ListGroupMembers with an `after` of another organization", ["after"], (c) =>
    c.groups.listGroupMembers({ organizationId: orgA, groupId: gA, after: mB }),
  );
  add("ListOrganizationMemberships without any filter", [], (c) =>
    c.orgs.listOrganizationMemberships({}),
  );
  return cases;
}

beforeAll(async () => {
  t = await startTestServer();
  const c = t.clients("grpc");
  orgA = (await c.orgs.createOrganization({ name: "Org A" })).organization!.id;
  orgB = (await c.orgs.createOrganization({ name: "Org B" })).organization!.id;
  const member = async (organizationId: string, userId: string) =>
    (await c.orgs.createOrganizationMembership({ organizationId, userId })).organizationMembership!
      .id;
  mA = await member(orgA, "alice");
  mA2 = await member(orgA, "bob");
  mA3 = await member(orgA, "carol");
  mB = await member(orgB, "dave");
  gA = (await c.groups.createGroup({ organizationId: orgA, name: "Engineering" })).group!.id;
  gB = (await c.groups.createGroup({ organizationId: orgB, name: "Finance" })).group!.id;
  await c.groups.addGroupMember({
    organizationId: orgA,
    groupId: gA,
    organizationMembershipId: mA,
  });
  await c.groups.addGroupMember({
    organizationId: orgB,
    groupId: gB,
    organizationMembershipId: mB,
  });
});

afterAll(async () => {
  await t?.close();
});

describe.each(DOORS)("over %s", (door) => {
  const clients = () => t.clients(door);

  describe("INVALID_ARGUMENT naming every bad field, nothing written", () => {
    it.each(invalidCases())("$name", async ({ call, fields }) => {
      const err = await expectFailure(() => call(clients()), Code.InvalidArgument);
      const named = [...new Set(badFields(err))].sort();
      if (fields.length === 0) {
        // Either field may carry the violation, but one must.
        expect(named.length, "BadRequest names a field").toBeGreaterThan(0);
      } else {
        expect(named).toEqual([...fields].sort());
      }
    });

    it("names the repeated id of a batch", async () => {
      for (const run of [
        (ids: string[]) =>
          clients().groups.batchAddGroupMembers({
            organizationId: orgA,
            groupId: gA,
            organizationMembershipIds: ids,
          }),
        (ids: string[]) =>
          clients().groups.batchRemoveGroupMembers({
            organizationId: orgA,
            groupId: gA,
            organizationMembershipIds: ids,
          }),
      ]) {
        const err = await expectFailure(() => run([mA, mA2, mA3, mA2]), Code.InvalidArgument);
        const named = badFields(err);
        expect(named.length).toBeGreaterThan(0);
        for (const f of named)
          expect(["organization_membership_ids[1]", "organization_membership_ids[3]"]).toContain(f);
      }
    });

    it("refuses `before` and `after` together", async () => {
      const err = await expectFailure(
        () => clients().groups.listGroups({ organizationId: orgA, before: gA, after: gA }),
        Code.InvalidArgument,
      );
      const named = badFields(err);
      expect(named.length).toBeGreaterThan(0);
      for (const f of named) expect(["before", "after"]).toContain(f);
    });
  });

  describe("well-formed but unknown or foreign ids are NOT_FOUND, nothing written", () => {
    const notFound = async (call: () => Promise<unknown>, reason: string) => {
      const err = await expectFailure(call, Code.NotFound);
      expect(reasonOf(err)).toBe(reason);
      expect(badFields(err)).toEqual([]);
    };

    it("unknown organization", async () => {
      const c = clients();
      await notFound(
        () => c.orgs.getOrganization({ organizationId: unknown.org() }),
        "ORGANIZATION_NOT_FOUND",
      );
      await notFound(
        () => c.groups.createGroup({ organizationId: unknown.org(), name: "x" }),
        "ORGANIZATION_NOT_FOUND",
      );
      await notFound(
        () => c.orgs.createOrganizationMembership({ organizationId: unknown.org(), userId: "x" }),
        "ORGANIZATION_NOT_FOUND",
      );
      await notFound(
        () => c.groups.listGroups({ organizationId: unknown.org() }),
        "ORGANIZATION_NOT_FOUND",
      );
    });

    it("unknown group", async () => {
      const c = clients();
      await notFound(
        () => c.groups.getGroup({ organizationId: orgA, groupId: unknown.group() }),
        "GROUP_NOT_FOUND",
      );
      await notFound(
        () =>
          c.groups.addGroupMember({
            organizationId: orgA,
            groupId: unknown.group(),
            organizationMembershipId: mA,
          }),
        "GROUP_NOT_FOUND",
      );
    });

    it("unknown membership", async () => {
      const c = clients();
      await notFound(
        () => c.orgs.getOrganizationMembership({ organizationMembershipId: unknown.om() }),
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      await notFound(
        () =>
          c.groups.addGroupMember({
            organizationId: orgA,
            groupId: gA,
            organizationMembershipId: unknown.om(),
          }),
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
      await notFound(
        () =>
          c.groups.checkGroupMembership({
            organizationMembershipId: unknown.om(),
            groupIds: [gA],
          }),
        "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
      );
    });

    it("a group of org B named with org A's id is NOT_FOUND on every group RPC", async () => {
      const c = clients();
      const ref = { organizationId: orgA, groupId: gB };
      await notFound(() => c.groups.getGroup(ref), "GROUP_NOT_FOUND");
      await notFound(() => c.groups.updateGroup({ ...ref, name: "stolen" }), "GROUP_NOT_FOUND");
      await notFound(() => c.groups.deleteGroup(ref), "GROUP_NOT_FOUND");
      await notFound(
        () => c.groups.addGroupMember({ ...ref, organizationMembershipId: mA }),
        "GROUP_NOT_FOUND",
      );
      await notFound(
        () =>
          c.groups.removeGroupMember({ ...ref, organizationMembershipId: mB, allowMissing: true }),
        "GROUP_NOT_FOUND",
      );
      await notFound(() => c.groups.listGroupMembers(ref), "GROUP_NOT_FOUND");
      await notFound(
        () => c.groups.batchAddGroupMembers({ ...ref, organizationMembershipIds: [mA] }),
        "GROUP_NOT_FOUND",
      );
      await notFound(
        () => c.groups.batchRemoveGroupMembers({ ...ref, organizationMembershipIds: [mB] }),
        "GROUP_NOT_FOUND",
      );
      // Still intact in its own organization.
      const g = (await c.groups.getGroup({ organizationId: orgB, groupId: gB })).group!;
      expect(g.name).toBe("Finance");
      expect(g.memberCount).toBe(1n);
    });
  });

  describe("boundary values that are valid", () => {
    it("names of 256 characters / 256 emoji, trimmed names, descriptions of 150", async () => {
      const c = clients();
      for (const name of ["n".repeat(256), EMOJI.repeat(256), `  ${"t".repeat(256)}  `]) {
        const g = (await c.groups.createGroup({ organizationId: orgA, name })).group!;
        expect(g.name).toBe(name.trim());
        const o = (await c.orgs.createOrganization({ name })).organization!;
        expect(o.name).toBe(name.trim());
      }
      for (const description of ["d".repeat(150), EMOJI.repeat(150)]) {
        const g = (await c.groups.createGroup({ organizationId: orgA, name: "ok", description }))
          .group!;
        expect(g.description).toBe(description);
      }
      const upd = await c.groups.updateGroup({
        organizationId: orgA,
        groupId: gA,
        description: "e".repeat(150),
      });
      expect(upd.group!.description).toBe("e".repeat(150));
    });

    it("user_id and external_id of 128 characters", async () => {
      const c = clients();
      const userId = `${door}-`.padEnd(128, "u");
      const m = await c.orgs.createOrganizationMembership({ organizationId: orgA, userId });
      expect(m.organizationMembership!.userId).toBe(userId);
      const externalId = `${door}-${U()}-${"x".repeat(128)}`.slice(0, 128);
      const o = await c.orgs.createOrganization({ name: "ext", externalId });
      expect(o.organization!.externalId).toBe(externalId);
    });

    it("limit 0 and 1000", async () => {
      const c = clients();
      for (const limit of [0, 1000]) {
        await c.orgs.listOrganizations({ limit });
        await c.orgs.listOrganizationMemberships({ organizationId: orgA, limit });
        await c.groups.listGroups({ organizationId: orgA, limit });
        const members = await c.groups.listGroupMembers({
          organizationId: orgA,
          groupId: gA,
          limit,
        });
        expect(members.organizationMemberships.map((m) => m.id)).toEqual([mA]);
        await c.groups.listGroupsForOrganizationMembership({ organizationMembershipId: mA, limit });
      }
    });

    it("CheckGroupMembership with 100 group ids", async () => {
      const c = clients();
      const groupIds = [...Array.from({ length: 98 }, () => unknown.group()), gB, gA];
      const r = await c.groups.checkGroupMembership({ organizationMembershipId: mA, groupIds });
      expect(r.groupIds).toEqual([gA]);
    });
  });
});

describe("plain Connect JSON over fetch", () => {
  /** POSTs `body` as Connect JSON to CreateGroup. */
  const postCreateGroup = (body: unknown) =>
    fetch(`${t.httpUrl}/groups.v1.GroupsService/CreateGroup`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        authorization: `Bearer ${t.apiKey}`,
      },
      body: JSON.stringify(body),
    });

  it("answers HTTP 400 with code invalid_argument and a google.rpc.BadRequest detail", async () => {
    const before = await rowCounts();
    const res = await postCreateGroup({ organizationId: "org_123", name: "" });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as {
      code: string;
      message?: string;
      details?: { type: string; value: string }[];
    };
    expect(body.code).toBe("invalid_argument");
    const types = (body.details ?? []).map((d) => d.type);
    expect(types).toContain("google.rpc.BadRequest");
    expect(types).toContain("google.rpc.ErrorInfo");
    expect([...new Set(badFieldsOfConnectJson(body))].sort()).toEqual(["name", "organization_id"]);
    expect(await rowCounts()).toEqual(before);
  });

  /** POSTs raw Connect JSON `text` to `method`; the error body, its reason and bad fields. */
  async function postRaw(method: string, text: string) {
    const res = await fetch(`${t.httpUrl}/groups.v1.${method}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        authorization: `Bearer ${t.apiKey}`,
      },
      body: text,
    });
    const body = (await res.json()) as ConnectErrorJson;
    return {
      status: res.status,
      code: body.code,
      reason: reasonOfConnectJson(body),
      fields: badFieldsOfConnectJson(body),
    };
  }

  // Refused by the framework before the pipeline runs, yet answered like every
  // bad request: INVALID_ARGUMENT, a reason, and the field when one is named.
  it.each([
    ["a number that is a string", "GroupsService/ListGroups", { limit: "abc" }, ["limit"]],
    ["a fraction for an integer", "GroupsService/ListGroups", { limit: 1.5 }, ["limit"]],
    ["an order the API does not have", "GroupsService/ListGroups", { order: "asc" }, ["order"]],
    ["a misspelled field", "GroupsService/ListGroups", { limt: 5 }, ["limt"]],
  ])("answers %s with INVALID_ARGUMENT naming the field", async (_, method, body, fields) => {
    const r = await postRaw(method, JSON.stringify({ organizationId: orgA, ...body }));
    expect(r).toEqual({
      status: 400,
      code: "invalid_argument",
      reason: "MALFORMED_REQUEST",
      fields,
    });
  });

  it("answers a membership status it does not know with INVALID_ARGUMENT, not an active membership", async () => {
    const before = await rowCounts();
    for (const status of ["INACTIVE", "inactive", "ORGANIZATION_MEMBERSHIP_STATUS_SUSPENDED"]) {
      const r = await postRaw(
        "OrganizationsService/CreateOrganizationMembership",
        JSON.stringify({ organizationId: orgA, userId: `user-${status}`, status }),
      );
      expect(r, status).toEqual({
        status: 400,
        code: "invalid_argument",
        reason: "MALFORMED_REQUEST",
        fields: ["status"],
      });
    }
    expect(await rowCounts()).toEqual(before);
    // The enum's own JSON name is what the API takes.
    const ok = await postRaw(
      "OrganizationsService/CreateOrganizationMembership",
      JSON.stringify({
        organizationId: orgA,
        userId: "user-inactive",
        status: "ORGANIZATION_MEMBERSHIP_STATUS_INACTIVE",
      }),
    );
    expect(ok.status).toBe(200);
  });

  it("answers a body that is not JSON with INVALID_ARGUMENT and a reason", async () => {
    const r = await postRaw("GroupsService/ListGroups", "{not json");
    expect(r).toEqual({
      status: 400,
      code: "invalid_argument",
      reason: "MALFORMED_REQUEST",
      fields: [],
    });
  });

  it("accepts snake_case JSON field names too and still names every bad field", async () => {
    const res = await postCreateGroup({
      organization_id: orgA,
      name: "x",
      description: "d".repeat(151),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as {
      code: string;
      details?: { type: string; value: string }[];
    };
    expect(body.code).toBe("invalid_argument");
    expect(badFieldsOfConnectJson(body)).toEqual(["description"]);
  });
});
