import { Code, ConnectError } from "@connectrpc/connect";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import { startTestServer, type Clients, type Door, type TestServer } from "../support/server.js";
import { pool } from "../support/assertions.js";

/**
 * SPEC §4 on every List RPC: limit (default 10, max 1000), order (DESC default,
 * ASC), keyset cursors `after`/`before` in both directions, `list_metadata`,
 * stability under concurrent inserts, and unknown/foreign cursors.
 */

const N = 250;
const PAGE = 100;

let t: TestServer;
const door: Partial<Record<Door, Clients>> = {};
const c = (d: Door): Clients => (door[d] ??= t.clients(d));

// Seeded fixtures (ids sorted ascending = creation order).
let orgIds: string[] = [];
let orgA: string; // 250 memberships (249 users + "walker"), group G with all of them
let orgB: string; // 250 groups; walker's membership MB is in every one
let orgC: string; // scratch org for the concurrent-insert tests
let membershipsOfA: string[] = [];
let walkerMemberships: string[] = []; // walker's membership in each of the 250 orgs
let groupG: string;
let groupsOfB: string[] = [];
let mB: string;
// Deleted after seeding, while the reaper is held still (see the last describe).
let deletedOrg: string; // walker was a member
let walkerInDeletedOrg: string;
let deletedGroup: string; // of org B, mB was in it
let deletedMembership: string; // of org A, was in group G

const asc = (ids: string[]) => [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

async function expectError(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!err) throw new Error(`call succeeded, expected ${Code[code]}`);
  expect(Code[err.code], err.message).toBe(Code[code]);
  const info = err.findDetails(ErrorInfoSchema);
  expect(info.length, "google.rpc.ErrorInfo present").toBeGreaterThan(0);
  expect(info[0].reason).toMatch(/^[A-Z][A-Z0-9_]*$/);
  return err;
}

const badFields = (err: ConnectError) =>
  err.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field));

interface PageParams {
  limit?: number;
  before?: string;
  after?: string;
  order?: Order;
}
interface PageResult {
  ids: string[];
  before: string;
  after: string;
}
interface ListSpec {
  name: string;
  fetch(c: Clients, p: PageParams): Promise<PageResult>;
  /** The full list, ascending. */
  expected(): string[];
  /** A well-formed id of the listed kind that does not exist. */
  unknown(): string;
  /** An existing object of the listed kind outside this list's scope (if the list has one). */
  foreign?(): string;
  /** An object this list showed until it (or its organization) was deleted. */
  deleted(): string;
}

const p = (x: PageParams) => ({
  limit: x.limit ?? 0,
  before: x.before ?? "",
  after: x.after ?? "",
  order: x.order ?? Order.UNSPECIFIED,
});
const meta = (m: { before: string; after: string } | undefined) => ({
  before: m?.before ?? "",
  after: m?.after ?? "",
});

const LISTS: ListSpec[] = [
  {
    name: "ListOrganizations",
    async fetch(c, x) {
      const r = await c.orgs.listOrganizations(p(x));
      return { ids: r.organizations.map((o) => o.id), ...meta(r.listMetadata) };
    },
    expected: () => orgIds,
    unknown: () => `org_${ulid()}`,
    deleted: () => deletedOrg,
  },
  {
    name: "ListOrganizationMemberships(organization_id)",
    async fetch(c, x) {
      const r = await c.orgs.listOrganizationMemberships({ organizationId: orgA, ...p(x) });
      return { ids: r.organizationMemberships.map((m) => m.id), ...meta(r.listMetadata) };
    },
    expected: () => membershipsOfA,
    unknown: () => `om_${ulid()}`,
    foreign: () => mB, // a membership of org B
    deleted: () => deletedMembership,
  },
  {
    name: "ListOrganizationMemberships(user_id)",
    async fetch(c, x) {
      const r = await c.orgs.listOrganizationMemberships({ userId: "walker", ...p(x) });
      return { ids: r.organizationMemberships.map((m) => m.id), ...meta(r.listMetadata) };
    },
    expected: () => walkerMemberships,
    unknown: () => `om_${ulid()}`,
    foreign: () => membershipsOfA.find((id) => !walkerMemberships.includes(id))!, // another user's
    deleted: () => walkerInDeletedOrg, // a membership of a deleted organization
  },
  {
    name: "ListGroups",
    async fetch(c, x) {
      const r = await c.groups.listGroups({ organizationId: orgB, ...p(x) });
      return { ids: r.groups.map((g) => g.id), ...meta(r.listMetadata) };
    },
    expected: () => groupsOfB,
    unknown: () => `group_${ulid()}`,
    foreign: () => groupG, // a group of org A
    deleted: () => deletedGroup,
  },
  {
    name: "ListGroupMembers",
    async fetch(c, x) {
      const r = await c.groups.listGroupMembers({ organizationId: orgA, groupId: groupG, ...p(x) });
      return { ids: r.organizationMemberships.map((m) => m.id), ...meta(r.listMetadata) };
    },
    expected: () => membershipsOfA,
    unknown: () => `om_${ulid()}`,
    foreign: () => mB, // a membership of org B
    deleted: () => deletedMembership,
  },
  {
    name: "ListGroupsForOrganizationMembership",
    async fetch(c, x) {
      const r = await c.groups.listGroupsForOrganizationMembership({
        organizationMembershipId: mB,
        ...p(x),
      });
      return { ids: r.groups.map((g) => g.id), ...meta(r.listMetadata) };
    },
    expected: () => groupsOfB,
    unknown: () => `group_${ulid()}`,
    foreign: () => groupG, // a group of org A
    deleted: () => deletedGroup, // it held mB
  },
];

beforeAll(async () => {
  t = await startTestServer();
  const g = c("grpc");

  // 250 organizations: A, B, C and 247 more; "walker" is a member of each.
  const orgs = await pool(Array.from({ length: N }), 16, async (_, i) => {
    const r = await g.orgs.createOrganization({ name: `Org ${i}` });
    return r.organization!.id;
  });
  [orgA, orgB, orgC] = orgs;
  orgIds = asc(orgs);
  const walker = await pool(orgs, 16, async (organizationId) => {
    const r = await g.orgs.createOrganizationMembership({ organizationId, userId: "walker" });
    return r.organizationMembership!.id;
  });
  walkerMemberships = asc(walker);
  mB = walker[1];

  // Org A: 249 more members, and one group G holding all 250.
  const others = await pool(Array.from({ length: N - 1 }), 16, async (_, i) => {
    const r = await g.orgs.createOrganizationMembership({
      organizationId: orgA,
      userId: `user-${String(i).padStart(3, "0")}`,
    });
    return r.organizationMembership!.id;
  });
  membershipsOfA = asc([walker[0], ...others]);
  groupG = (await g.groups.createGroup({ organizationId: orgA, name: "G" })).group!.id;
  const batch = await g.groups.batchAddGroupMembers({
    organizationId: orgA,
    groupId: groupG,
    organizationMembershipIds: membershipsOfA,
  });
  expect(batch.results.filter((r) => r.added)).toHaveLength(N);

  // Org B: 250 groups, walker's membership MB in each.
  groupsOfB = asc(
    await pool(Array.from({ length: N }), 16, async (_, i) => {
      const groupId = (await g.groups.createGroup({ organizationId: orgB, name: `B ${i}` })).group!
        .id;
      await g.groups.addGroupMember({
        organizationId: orgB,
        groupId,
        organizationMembershipId: mB,
      });
      return groupId;
    }),
  );
});

afterAll(async () => {
  await t?.close();
});

describe.each(LISTS)("$name", (list) => {
  describe.each(["grpc", "connect", "grpc-web"] as const)("over %s", (d) => {
    it.each([
      ["ORDER_ASC", Order.ASC],
      ["ORDER_DESC", Order.DESC],
    ] as const)(
      "walks 250 items forward with `after` and back with `before` in %s",
      async (_, order) => {
        const client = c(d);
        const inOrder = order === Order.ASC ? list.expected() : [...list.expected()].reverse();
        expect(inOrder).toHaveLength(N);

        // Forward: 100 / 100 / 50, the last page with no `after`.
        const forward: PageResult[] = [];
        let after = "";
        for (let guard = 0; guard < 10; guard++) {
          const page = await list.fetch(client, { limit: PAGE, after, order });
          forward.push(page);
          if (page.after === "") break;
          expect(page.after).toBe(page.ids.at(-1));
          after = page.after;
        }
        expect(forward.map((pg) => pg.ids.length)).toEqual([100, 100, 50]);
        expect(forward[0].before, "first page has no `before`").toBe("");
        expect(forward[1].before).toBe(forward[1].ids[0]);
        expect(forward[2].before).toBe(forward[2].ids[0]);
        const walked = forward.flatMap((pg) => pg.ids);
        expect(new Set(walked).size).toBe(walked.length);
        expect(walked).toEqual(inOrder);

        // Backward from the end: `before` of the last page, until `before` is empty.
        const backward: PageResult[] = [];
        let before = forward[2].before;
        for (let guard = 0; guard < 10; guard++) {
          const page = await list.fetch(client, { limit: PAGE, before, order });
          backward.push(page);
          // Later items always exist on a page reached through `before`.
          expect(page.after).toBe(page.ids.at(-1));
          if (page.before === "") break;
          expect(page.before).toBe(page.ids[0]);
          before = page.before;
        }
        expect(backward.map((pg) => pg.ids.length)).toEqual([100, 100]);
        const back = [
          ...backward
            .slice()
            .reverse()
            .flatMap((pg) => pg.ids),
          ...forward[2].ids,
        ];
        expect(new Set(back).size).toBe(back.length);
        expect(back).toEqual(inOrder);
        expect(backward[1].ids).toEqual(forward[0].ids);
        expect(backward[0].ids).toEqual(forward[1].ids);

        // Backward from the very last item: 100 / 100 / 49, then nothing earlier.
        const fromEnd: string[][] = [];
        before = inOrder.at(-1)!;
        for (let guard = 0; guard < 10; guard++) {
          const page = await list.fetch(client, { limit: PAGE, before, order });
          fromEnd.push(page.ids);
          if (page.before === "") break;
          before = page.before;
        }
        expect(fromEnd.map((ids) => ids.length)).toEqual([100, 100, 49]);
        expect([...fromEnd.reverse().flat(), inOrder.at(-1)]).toEqual(inOrder);
      },
    );
  });

  it("defaults to 10 items, newest first (limit 0, ORDER_UNSPECIFIED)", async () => {
    const desc = [...list.expected()].reverse();
    for (const d of ["grpc", "connect"] as const) {
      const page = await list.fetch(c(d), {});
      expect(page.ids).toEqual(desc.slice(0, 10));
      expect(page.after).toBe(desc[9]);
      expect(page.before).toBe("");
      const explicit = await list.fetch(c(d), { limit: 0, order: Order.DESC });
      expect(explicit).toEqual(page);
      const ascPage = await list.fetch(c(d), { limit: 0, order: Order.ASC });
      expect(ascPage.ids).toEqual(list.expected().slice(0, 10));
      expect(ascPage.after).toBe(list.expected()[9]);
    }
  });

  it("takes up to 1000 items per page and refuses 1001", async () => {
    const all = await list.fetch(c("grpc"), { limit: 1000 });
    expect(all.ids).toEqual([...list.expected()].reverse());
    expect(all.after).toBe("");
    expect(all.before).toBe("");
    const allAsc = await list.fetch(c("connect"), { limit: 1000, order: Order.ASC });
    expect(allAsc.ids).toEqual(list.expected());
    expect(allAsc.after).toBe("");
    const err = await expectError(list.fetch(c("connect"), { limit: 1001 }), Code.InvalidArgument);
    expect(badFields(err)).toContain("limit");
  });

  it("starts a page right after / right before a cursor in the middle, in both orders", async () => {
    const e = list.expected();
    const x = e[123];
    const client = c("connect");
    expect((await list.fetch(client, { limit: 5, after: x, order: Order.ASC })).ids).toEqual(
      e.slice(124, 129),
    );
    expect((await list.fetch(client, { limit: 5, before: x, order: Order.ASC })).ids).toEqual(
      e.slice(118, 123),
    );
    expect((await list.fetch(client, { limit: 5, after: x, order: Order.DESC })).ids).toEqual(
      e.slice(118, 123).reverse(),
    );
    expect((await list.fetch(client, { limit: 5, before: x, order: Order.DESC })).ids).toEqual(
      e.slice(124, 129).reverse(),
    );
  });

  it("refuses `before` and `after` together", async () => {
    const e = list.expected();
    for (const d of ["grpc", "connect"] as const) {
      const err = await expectError(
        list.fetch(c(d), { limit: 10, before: e[200], after: e[100] }),
        Code.InvalidArgument,
      );
      const fields = badFields(err);
      expect(
        fields.some((f) => f === "before" || f === "after"),
        fields.join(),
      ).toBe(true);
    }
  });

  it("refuses a cursor naming an unknown id (field `after` / `before`)", async () => {
    for (const d of ["grpc", "connect"] as const) {
      for (const field of ["after", "before"] as const) {
        const err = await expectError(
          list.fetch(c(d), { limit: 10, [field]: list.unknown() }),
          Code.InvalidArgument,
        );
        expect(badFields(err)).toEqual([field]);
      }
    }
  });

  if (list.foreign) {
    const foreign = list.foreign.bind(list);
    it("refuses a cursor naming an existing object outside the list's scope", async () => {
      for (const d of ["grpc", "connect"] as const) {
        for (const field of ["after", "before"] as const) {
          const err = await expectError(
            list.fetch(c(d), { limit: 10, [field]: foreign() }),
            Code.InvalidArgument,
          );
          expect(badFields(err)).toEqual([field]);
        }
      }
    });
  }
});

describe("stability under concurrent inserts", () => {
  /** Walks a list page by page while `insert` runs alongside every page request. */
  async function walkWhileInserting(
    fetch: (after: string) => Promise<PageResult>,
    insert: () => Promise<unknown>,
  ): Promise<{ walked: string[]; inserted: number }> {
    const walked: string[] = [];
    let after = "";
    let inserted = 0;
    for (let guard = 0; guard < 200; guard++) {
      const [page] = await Promise.all([
        fetch(after),
        ...Array.from({ length: 3 }, () => insert().then(() => inserted++)),
      ]);
      walked.push(...page.ids);
      if (page.after === "") break;
      after = page.after;
    }
    return { walked, inserted };
  }

  function checkWalk(walked: string[], before: string[], order: Order) {
    // No item twice, list order kept, every item that existed before the walk seen exactly once.
    expect(new Set(walked).size).toBe(walked.length);
    expect(walked).toEqual(order === Order.ASC ? asc(walked) : asc(walked).reverse());
    const seen = new Set(walked);
    expect(before.filter((id) => !seen.has(id))).toEqual([]);
  }

  it("ListGroups in ORDER_ASC and ORDER_DESC while groups are created", async () => {
    const g = c("grpc");
    const create = async () =>
      (await g.groups.createGroup({ organizationId: orgC, name: "concurrent" })).group!.id;
    await pool(Array.from({ length: 150 }), 16, create);

    for (const order of [Order.ASC, Order.DESC]) {
      const before = asc(
        (
          await c("connect").groups.listGroups({ organizationId: orgC, limit: 1000, order })
        ).groups.map((x) => x.id),
      );
      expect(before.length).toBeGreaterThanOrEqual(150);
      const { walked, inserted } = await walkWhileInserting(async (after) => {
        const r = await c("connect").groups.listGroups({
          organizationId: orgC,
          limit: 10,
          after,
          order,
        });
        return { ids: r.groups.map((x) => x.id), ...meta(r.listMetadata) };
      }, create);
      expect(inserted).toBeGreaterThan(0);
      checkWalk(walked, before, order);
    }
  });

  it("ListGroupMembers in ORDER_ASC while members are added", async () => {
    const g = c("grpc");
    const hot = (await g.groups.createGroup({ organizationId: orgC, name: "hot" })).group!.id;
    let n = 0;
    const addNew = async () => {
      const m = await g.orgs.createOrganizationMembership({
        organizationId: orgC,
        userId: `late-${n++}`,
      });
      await g.groups.addGroupMember({
        organizationId: orgC,
        groupId: hot,
        organizationMembershipId: m.organizationMembership!.id,
      });
    };
    await pool(Array.from({ length: 120 }), 16, addNew);
    const before = asc(
      (
        await g.groups.listGroupMembers({ organizationId: orgC, groupId: hot, limit: 1000 })
      ).organizationMemberships.map((m) => m.id),
    );
    expect(before).toHaveLength(120);

    const { walked, inserted } = await walkWhileInserting(async (after) => {
      const r = await c("connect").groups.listGroupMembers({
        organizationId: orgC,
        groupId: hot,
        limit: 10,
        after,
        order: Order.ASC,
      });
      return { ids: r.organizationMemberships.map((m) => m.id), ...meta(r.listMetadata) };
    }, addNew);
    expect(inserted).toBeGreaterThan(0);
    checkWalk(walked, before, Order.ASC);
  });
});

describe("a cursor naming an object deleted since it was listed", () => {
  // Deleted groups and organizations keep their rows until the reaper finishes
  // them; held still, the rows are there and the cursor must be refused anyway.
  beforeAll(async () => {
    await t.server.reaper.stop();
    const g = c("grpc");
    deletedOrg = (await g.orgs.createOrganization({ name: "Gone" })).organization!.id;
    walkerInDeletedOrg = (
      await g.orgs.createOrganizationMembership({ organizationId: deletedOrg, userId: "walker" })
    ).organizationMembership!.id;
    await g.orgs.deleteOrganization({ organizationId: deletedOrg });

    deletedGroup = (await g.groups.createGroup({ organizationId: orgB, name: "Gone" })).group!.id;
    await g.groups.addGroupMember({
      organizationId: orgB,
      groupId: deletedGroup,
      organizationMembershipId: mB,
    });
    await g.groups.deleteGroup({ organizationId: orgB, groupId: deletedGroup });

    deletedMembership = (
      await g.orgs.createOrganizationMembership({ organizationId: orgA, userId: "leaver" })
    ).organizationMembership!.id;
    await g.groups.addGroupMember({
      organizationId: orgA,
      groupId: groupG,
      organizationMembershipId: deletedMembership,
    });
    await g.orgs.deleteOrganizationMembership({ organizationMembershipId: deletedMembership });
  });

  it.each(LISTS)("$name refuses it as INVALID_ARGUMENT", async (list) => {
    for (const field of ["after", "before"] as const) {
      const err = await expectError(
        list.fetch(c("grpc"), { limit: 10, [field]: list.deleted() }),
        Code.InvalidArgument,
      );
      expect(badFields(err)).toEqual([field]);
    }
  });
});
