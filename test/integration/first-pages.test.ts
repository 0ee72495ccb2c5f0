import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataSource } from "typeorm";
import { loadConfig } from "../../server/src/config.js";
import type { Group, SortOrder } from "../../server/src/domain/model.js";
import { createDataSource, migrate } from "../../server/src/store/data-source.js";
import { bindable, select } from "../../server/src/store/dialect.js";
import {
  firstPagesFrom,
  firstPagesStatement,
  groupsOfMembers,
  type FirstPagesRow,
  type GroupsOfMember,
  type GroupsOfMemberAsk,
} from "../../server/src/store/group-members.js";
import { createTestDatabase, storeEnv, type TestDatabase } from "../support/database.js";
import { rng } from "../support/rng.js";

/**
 * ListGroupsForOrganizationMembership's shared first pages
 * (store/group-members.ts) on the real store: one statement reads a batch's
 * links up to a budget, and the memberships it did not reach are read again
 * on their own. Every answer must be the page the membership has, whoever
 * else was in its batch — including a membership of a deleted organization
 * whose links use up the budget without being answered.
 */
let db: TestDatabase;
let dataSource: DataSource;

const ORG = "org_A";
const GONE_ORG = "org_D";
const GROUPS = 80;
const groupId = (i: number) => `group_${String(i).padStart(3, "0")}`;
const isDeleted = (i: number) => i % 7 === 3;
/** Links per membership of ORG, by index: around the first-page floor (32) and beyond it. */
const LINKS = [0, 1, 5, 31, 32, 33, 40, 70, 80, 3];
const member = (k: number) => `om_A${String(k).padStart(2, "0")}`;
const groupsOf = (k: number) =>
  Array.from({ length: LINKS[k] }, (_, j) => (k * 3 + j) % GROUPS).sort((a, b) => a - b);
/** A membership of the deleted organization, between om_A04 and om_A05 in either scan order. */
const GONE_MEMBER = "om_A04x";
const GONE_GROUPS = 60;
const MISSING = "om_A99";
const AT = new Date("2026-01-02T03:04:05.678Z");

beforeAll(async () => {
  db = await createTestDatabase();
  dataSource = createDataSource(loadConfig(storeEnv(db)).database);
  await dataSource.initialize();
  await migrate(dataSource);
  const q = (sql: string, params: unknown[]) =>
    dataSource.query(sql, bindable(dataSource.manager, params));
  const orgs = "INSERT INTO organizations (id, name, created_at, updated_at, deleted_at) VALUES ";
  await q(orgs + "(?, 'A', ?, ?, NULL), (?, 'D', ?, ?, ?)", [ORG, AT, AT, GONE_ORG, AT, AT, AT]);
  const groups = (org: string, ids: string[]) =>
    q(
      "INSERT INTO org_groups (id, organization_id, name, description, member_count, version, " +
        "created_at, updated_at, deleted_at) VALUES " +
        ids.map(() => "(?, ?, ?, NULL, 7, 2, ?, ?, ?)").join(", "),
      ids.flatMap((id, i) => [id, org, `G ${id}`, AT, AT, org === ORG && isDeleted(i) ? AT : null]),
    );
  await groups(
    ORG,
    Array.from({ length: GROUPS }, (_, i) => groupId(i)),
  );
  const goneGroups = Array.from({ length: GONE_GROUPS }, (_, i) => `group_D${i}`);
  await groups(GONE_ORG, goneGroups);
  const members: [string, string][] = [
    ...LINKS.map((_, k): [string, string] => [member(k), ORG]),
    [GONE_MEMBER, GONE_ORG],
  ];
  await q(
    "INSERT INTO organization_memberships (id, organization_id, user_id, status, created_at, updated_at) VALUES " +
      members.map(() => "(?, ?, ?, 'active', ?, ?)").join(", "),
    members.flatMap(([id, org]) => [id, org, `user_${id}`, AT, AT]),
  );
  const links: [string, string][] = [
    ...LINKS.flatMap((_, k) => groupsOf(k).map((g): [string, string] => [groupId(g), member(k)])),
    ...goneGroups.map((g): [string, string] => [g, GONE_MEMBER]),
  ];
  await q(
    "INSERT INTO group_memberships (group_id, organization_membership_id, created_at) VALUES " +
      links.map(() => "(?, ?, ?)").join(", "),
    links.flatMap(([g, m]) => [g, m, AT]),
  );
});

afterAll(async () => {
  await dataSource?.destroy();
  await db?.drop();
});

/** What a membership's first page must be, from the seed alone. */
function expected(ask: GroupsOfMemberAsk) {
  const k = LINKS.findIndex((_, i) => member(i) === ask.membershipId);
  if (k < 0) return { membership: undefined };
  const live = groupsOf(k)
    .filter((g) => !isDeleted(g))
    .map(groupId);
  if (ask.page.order === "desc") live.reverse();
  const items = live.slice(0, ask.page.limit);
  return {
    membership: { organizationId: ORG },
    ids: items,
    after: live.length > ask.page.limit ? items.at(-1) : "",
  };
}

const answered = (a: GroupsOfMember) =>
  a.membership
    ? {
        membership: a.membership,
        ids: a.page.items.map((g) => g.id),
        after: a.page.after,
      }
    : { membership: undefined };

/** firstPagesStatement and firstPagesFrom on the real store: the indexes of the asks left. */
async function leftByOneStatement(
  asks: GroupsOfMemberAsk[],
  budget: number,
  answers: GroupsOfMember[] = [],
): Promise<number[]> {
  const memberships = [...new Set(asks.map((a) => a.membershipId))];
  const { sql, params } = firstPagesStatement(
    dataSource.manager,
    memberships,
    asks[0].page.order,
    budget,
  );
  const rows = await select<FirstPagesRow>(dataSource.manager, sql, params);
  return firstPagesFrom(
    rows,
    asks,
    asks.map((_, i) => i),
    budget,
    answers,
  );
}

const ask = (
  membershipId: string,
  limit: number,
  order: SortOrder = "desc",
): GroupsOfMemberAsk => ({
  membershipId,
  page: { limit, order },
});

describe("first pages of memberships' groups, read together", () => {
  it("leave to a statement of their own the memberships the budget did not reach, in either order", async () => {
    // Budget 4 × 32 = 128 links; om_A08, om_A07, om_A04x and om_A04 hold 69 + 60 + 60 + 28 live
    // ones (the deleted organization's 60 count against the budget too).
    const memberships = [member(8), member(7), GONE_MEMBER, member(4)];
    for (const [order, left] of [
      ["desc", [GONE_MEMBER, member(4)]],
      ["asc", [member(8)]],
    ] as const) {
      const asks = memberships.map((m) => ask(m, 1, order));
      const answers: GroupsOfMember[] = [];
      const leftIndexes = await leftByOneStatement(asks, 128, answers);
      expect(
        leftIndexes.map((i) => memberships[i]),
        order,
      ).toEqual(left);
      for (const [i, a] of answers.entries()) {
        if (a) expect(answered(a), `${order} ${memberships[i]}`).toEqual(expected(asks[i]));
      }
    }
    // Budget 32 + 51 = 83: om_A04x's 60 links leave om_A07, asked for 50, only 23 of its 60.
    const asks = [ask(GONE_MEMBER, 1, "asc"), ask(member(7), 50, "asc")];
    expect(await leftByOneStatement(asks, 83)).toEqual([1]);
    expect((await groupsOfMembers(dataSource.manager, asks)).map(answered)).toEqual(
      asks.map(expected),
    );
  });

  it("answer every ask with its own page, whatever else is in its batch", async () => {
    const random = rng(7);
    const pool = [...LINKS.map((_, k) => member(k)), GONE_MEMBER, MISSING];
    const limits = [1, 2, 3, 10, 27, 31, 32, 33, 100];
    for (let batch = 0; batch < 60; batch++) {
      const order: SortOrder = random() < 0.5 ? "asc" : "desc";
      const asks = Array.from({ length: 1 + Math.floor(random() * 8) }, () =>
        ask(
          pool[Math.floor(random() * pool.length)],
          limits[Math.floor(random() * limits.length)],
          // A few asks of the other order share the batch.
          random() < 0.2 ? (order === "asc" ? "desc" : "asc") : order,
        ),
      );
      const answers = await groupsOfMembers(dataSource.manager, asks);
      expect(answers.map(answered), JSON.stringify(asks)).toEqual(asks.map(expected));
    }
  });

  it("carry every column of the group", async () => {
    const [answer] = await groupsOfMembers(dataSource.manager, [ask(member(2), 1, "asc")]);
    expect(answer.page.items).toEqual([
      {
        id: groupId(6),
        organizationId: ORG,
        name: `G ${groupId(6)}`,
        description: null,
        memberCount: 7,
        version: 2,
        createdAt: AT,
        updatedAt: AT,
      } satisfies Group,
    ]);
  });
});
