import type { EntityManager } from "typeorm";
import type { Group, Membership, Page, PageRequest, SortOrder } from "../domain/model.js";
import { GroupEntity, GroupMembershipEntity } from "./entities.js";
import { membershipOfRow, membershipStatement, type MembershipRowOfPage } from "./memberships.js";
import type { NewEvent } from "../domain/events.js";
import {
  deleteLimited,
  executeAll,
  indexed,
  padded,
  powerOfTwoAtLeast,
  placeholders,
  select,
  selectAll,
  selectParts,
  lockClause,
  type Dialect,
  type Statement,
} from "./dialect.js";
import { ConcurrentChange, isDuplicateKey } from "./errors.js";
import { groupOfRow, LIVE_GROUP, memberCountsStatement, type GroupRowOfPage } from "./groups.js";
import { eventStatements } from "./outbox.js";
import {
  checkedPageOf,
  checkedPageStatement,
  cursorCheck,
  GROUP_COLUMNS,
  selectCheckedPage,
  type CheckedPage,
  type CheckedRow,
  keysetStatement,
  MEMBER_COUNT,
  MEMBERSHIP_COLUMNS,
  reviveRow,
  scansAscending,
} from "./pagination.js";

/** One group's side of a change to its members: which group, which memberships. */
export interface MemberChangeTarget {
  organizationId: string;
  groupId: string;
  membershipIds: string[];
}

/** What lockGroupsForMemberChange found for one target. */
export interface LockedGroup {
  /** The live group with its member count; undefined if it or its organization is gone. */
  group?: Group;
  /** The target's memberships that exist (in any organization), each with whether it is linked. */
  found: Map<string, { membership: Membership; linked: boolean }>;
}

/**
 * What a change to groups' members reads, in order: the live groups, locked
 * in id order (two changes sharing groups lock them alike); then, once the
 * locks are held, the memberships, and the links to the groups with the
 * groups' member counts. Three statements however many groups and
 * memberships: the service sends them in one round trip.
 */
export function memberChangeReads(
  db: EntityManager | Dialect,
  targets: MemberChangeTarget[],
  lock: "update" | "share",
): Statement[] {
  const groupIds = [...new Set(targets.map((t) => t.groupId))].sort();
  const membershipIds = [...new Set(targets.flatMap((t) => t.membershipIds))];
  return [
    {
      sql:
        // Without the count: it is read below, outside the locking read, so summing the
        // delta rows takes no locks on them.
        `SELECT ${GROUP_COLUMNS.replace(MEMBER_COUNT, "0")} FROM org_groups g ` +
        `WHERE g.id IN ${placeholders(groupIds)} AND ${LIVE_GROUP} ` +
        `ORDER BY g.id${lockClause(db, lock)}`,
      params: groupIds,
    },
    {
      sql: `SELECT ${MEMBERSHIP_COLUMNS} FROM organization_memberships m WHERE m.id IN ${placeholders(membershipIds)}`,
      params: membershipIds,
    },
    {
      // Links and counts in one statement, so in one snapshot: a count that already includes
      // a change to a link read here as unchanged would answer a wrong member_count.
      sql:
        `SELECT g.id AS groupId, NULL AS membershipId, ${MEMBER_COUNT} AS memberCount ` +
        `FROM org_groups g WHERE g.id IN ${placeholders(groupIds)} UNION ALL ` +
        "SELECT group_id, organization_membership_id, NULL FROM group_memberships WHERE " +
        targets
          .map(
            (t) =>
              `(group_id = ? AND organization_membership_id IN ${placeholders(t.membershipIds)})`,
          )
          .join(" OR "),
      params: [...groupIds, ...targets.flatMap((t) => [t.groupId, ...t.membershipIds])],
    },
  ];
}

/**
 * Locks the targets' live groups and reads what a change to their members
 * needs (memberChangeReads), in one round trip. The links are read without
 * locking them, since changes to one group's members run side by side; a
 * link added or removed by a concurrent change meanwhile makes the write fail
 * (see writeLinkChanges) and the transaction rerun.
 */
export async function lockGroupsForMemberChange(
  tx: EntityManager,
  targets: MemberChangeTarget[],
  lock: "update" | "share",
): Promise<LockedGroup[]> {
  const [groupRows, membershipRows, linkAndCountRows] = (await selectAll(
    tx,
    memberChangeReads(tx, targets, lock),
  )) as [
    Group[],
    Membership[],
    { groupId: string; membershipId: string | null; memberCount: number | string | null }[],
  ];
  const groupsById = new Map(groupRows.map((g) => [g.id, g]));
  const membershipsById = new Map(membershipRows.map((m) => [m.id, reviveRow(m)]));
  const links = new Set<string>();
  const counts = new Map<string, number>();
  for (const row of linkAndCountRows) {
    if (row.membershipId === null) counts.set(row.groupId, Number(row.memberCount));
    else links.add(`${row.groupId} ${row.membershipId}`);
  }
  return targets.map((t) => {
    const found = new Map<string, { membership: Membership; linked: boolean }>();
    for (const id of t.membershipIds) {
      const membership = membershipsById.get(id);
      if (membership) found.set(id, { membership, linked: links.has(`${t.groupId} ${id}`) });
    }
    const row = groupsById.get(t.groupId);
    if (!row || row.organizationId !== t.organizationId) return { found };
    return { group: { ...reviveRow(row), memberCount: counts.get(t.groupId) ?? 0 }, found };
  });
}

/** One group's links to add or remove, with their events. */
export interface LinkChange {
  group: Pick<Group, "id" | "organizationId">;
  op: "add" | "remove";
  membershipIds: string[];
  events: NewEvent[];
  at: Date;
}

/**
 * What changes to groups' members write, in order: the links added (one
 * INSERT) and removed (one DELETE), each group's count delta (one upsert,
 * see adjustMemberCount), then every event. Links and counts in (group,
 * membership) order, so concurrent writers lock rows in one order.
 */
export function memberChangeWrites(db: EntityManager | Dialect, changes: LinkChange[]) {
  const linksOf = (op: "add" | "remove") =>
    changes
      .filter((c) => c.op === op)
      .flatMap((c) => c.membershipIds.map((id) => ({ c, id })))
      .sort((x, y) => compare(x.c.group.id, y.c.group.id) || compare(x.id, y.id));
  const added = linksOf("add");
  const removed = linksOf("remove");
  const deltas = new Map<string, number>();
  for (const c of changes) {
    const sign = c.op === "add" ? 1 : -1;
    deltas.set(c.group.id, (deltas.get(c.group.id) ?? 0) + sign * c.membershipIds.length);
  }
  for (const [id, delta] of deltas) if (delta === 0) deltas.delete(id);
  const statements: Statement[] = [];
  if (added.length > 0) {
    statements.push({
      sql:
        "INSERT INTO group_memberships (group_id, organization_membership_id, created_at) VALUES " +
        added.map(() => "(?, ?, ?)").join(", "),
      params: added.flatMap(({ c, id }) => [c.group.id, id, c.at]),
    });
  }
  if (removed.length > 0) {
    statements.push({
      sql:
        "DELETE FROM group_memberships WHERE " +
        removed.map(() => "(group_id = ? AND organization_membership_id = ?)").join(" OR "),
      params: removed.flatMap(({ c, id }) => [c.group.id, id]),
    });
  }
  if (deltas.size > 0) statements.push(memberCountsStatement(db, deltas));
  const events = changes.flatMap((c) => c.events);
  return { statements, events, added: added.length, removed: removed.length };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Writes changes to groups' members (memberChangeWrites) in one round trip
 * (see executeAll). If another change linked or unlinked one of the links
 * since they were read, the insert meets a duplicate key or the delete finds
 * fewer rows, and this throws ConcurrentChange (the transaction then rolls
 * back).
 *
 * COMMIT is not sent with it: a write can wait on a row lock (a link another
 * change is adding, a count row), and a call whose deadline passes meanwhile
 * must not commit after its caller was told it failed (Database checks the
 * deadline before COMMIT).
 */
export async function writeLinkChanges(tx: EntityManager, changes: LinkChange[]): Promise<void> {
  const { statements, events, added, removed } = memberChangeWrites(tx, changes);
  if (statements.length === 0) return;
  let affected: number[];
  try {
    affected = await executeAll(tx, [...statements, ...eventStatements(tx, events)]);
  } catch (err) {
    if (isDuplicateKey(err, "PRIMARY")) throw new ConcurrentChange("link added meanwhile");
    throw err;
  }
  if (removed > 0 && affected[added > 0 ? 1 : 0] !== removed)
    throw new ConcurrentChange("link changed meanwhile");
}

/** Ids of the live groups a membership belongs to. */
export async function liveGroupIdsOfMember(
  db: EntityManager,
  membershipId: string,
): Promise<string[]> {
  const rows = await db
    .createQueryBuilder(GroupMembershipEntity, "gm")
    .innerJoin(GroupEntity.options.name, "g", "g.id = gm.group_id AND g.deleted_at IS NULL")
    .select("gm.group_id", "id")
    .where("gm.organization_membership_id = :membershipId", { membershipId })
    .orderBy("gm.group_id", "ASC")
    .getRawMany<{ id: string }>();
  return rows.map((r) => r.id);
}

/** Deletes every link of the membership (in groups live or being deleted). */
export async function deleteAllGroupMembershipsOf(
  tx: EntityManager,
  membershipIds: string[],
): Promise<void> {
  if (membershipIds.length === 0) return;
  await tx
    .createQueryBuilder()
    .delete()
    .from(GroupMembershipEntity)
    .where("organization_membership_id IN (:...membershipIds)", { membershipIds })
    .execute();
}

/** One CheckGroupMembership question: is `membershipId` in any of `groupIds`? */
export interface MembershipAsk {
  membershipId: string;
  groupIds: string[];
}

/**
 * CheckGroupMembership's statement, for one ask or several: each asked
 * membership that is live (in a live organization), with its organization,
 * joined to its links to the live groups among every ask's group ids — one
 * row per such link, or one row with groupId NULL. Both id lists go in one
 * IN list each, padded (the group ids to at least 16), so a few prepared
 * statements serve every batch: MariaDB plans one statement and reads each
 * membership's links with one descent, where a UNION ALL part per ask cost
 * it twice the CPU per ask (BENCHMARKS.md).
 */
export function membershipsInGroupsStatement(asks: readonly MembershipAsk[]): Statement {
  const membershipIds = padded([...new Set(asks.map((a) => a.membershipId))]);
  const groupIds = [...new Set(asks.flatMap((a) => a.groupIds))];
  const paddedGroupIds = padded(groupIds, Math.max(16, powerOfTwoAtLeast(groupIds.length)));
  return {
    sql:
      "SELECT m.id AS membershipId, m.organization_id AS organizationId, g.id AS groupId " +
      "FROM organization_memberships m " +
      "JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL " +
      "LEFT JOIN (group_memberships gm JOIN org_groups g ON g.id = gm.group_id AND g.deleted_at IS NULL) " +
      `ON gm.organization_membership_id = m.id AND gm.group_id IN ${placeholders(paddedGroupIds)} ` +
      `WHERE m.id IN ${placeholders(membershipIds)}`,
    params: [...paddedGroupIds, ...membershipIds],
  };
}

/**
 * What the store found for one ask: the membership's organization (undefined
 * if the membership or its organization is gone) and which of the asked
 * groups it is in.
 */
export type MembershipInGroups = { organizationId: string; groupIds: Set<string> } | undefined;

/**
 * Group ids one statement asks about at most: asks beyond it go in another
 * statement, so a batch of asks of 100 ids each does not make an IN list of
 * 1,600 (nor a prepared statement for every such size).
 */
const GROUP_IDS_PER_STATEMENT = 128;

/** Each ask's answer, in order, from one statement per GROUP_IDS_PER_STATEMENT group ids. */
export async function membershipsInGroups(
  db: EntityManager,
  asks: readonly MembershipAsk[],
): Promise<MembershipInGroups[]> {
  const chunks: { asks: MembershipAsk[]; groupIds: Set<string> }[] = [];
  for (const ask of asks) {
    const last = chunks.at(-1);
    const added = last ? ask.groupIds.filter((id) => !last.groupIds.has(id)).length : Infinity;
    if (last && last.groupIds.size + added <= GROUP_IDS_PER_STATEMENT) {
      last.asks.push(ask);
      for (const id of ask.groupIds) last.groupIds.add(id);
    } else {
      chunks.push({ asks: [ask], groupIds: new Set(ask.groupIds) });
    }
  }
  const found = new Map<string, { organizationId: string; groupIds: Set<string> }>();
  await Promise.all(
    chunks.map(async (chunk) => {
      const { sql, params } = membershipsInGroupsStatement(chunk.asks);
      const rows = await select<{
        membershipId: string;
        organizationId: string;
        groupId: string | null;
      }>(db, sql, params);
      for (const row of rows) {
        let membership = found.get(row.membershipId);
        if (!membership) {
          membership = { organizationId: row.organizationId, groupIds: new Set() };
          found.set(row.membershipId, membership);
        }
        if (row.groupId !== null) membership.groupIds.add(row.groupId);
      }
    }),
  );
  return asks.map((ask) => {
    const membership = found.get(ask.membershipId);
    if (!membership) return undefined;
    const asked = ask.groupIds.filter((id) => membership.groupIds.has(id));
    return { organizationId: membership.organizationId, groupIds: new Set(asked) };
  });
}

/**
 * ListGroupMembers' one statement (see checkedPageStatement), one round trip
 * where there were three or four: a row per link of
 * the page (`pg_linkId`) with its membership's columns, each carrying
 * `ck_cursorOk` when the page has a cursor (does it name a membership of the
 * group's organization?); one row with null page columns when the page is
 * empty; none when the group is not live in a live organization.
 *
 * The keyset runs on the group_memberships primary key alone, in a derived
 * table (a range scan, the same cost at any depth); only the page's links
 * are then joined to their memberships. Joined without the derived table,
 * MariaDB drives from organization_memberships and sorts the whole table.
 */
export function groupMembersPageStatement(
  organizationId: string,
  groupId: string,
  page: PageRequest,
): Statement {
  const cursor = cursorCheck(page, "organization_memberships", {
    sql: "cc.organization_id = g.organization_id",
    params: [],
  });
  const links = keysetStatement(
    {
      columns: "gm.organization_membership_id AS pg_linkId",
      from: "group_memberships gm",
      where: ["gm.group_id = ?"],
      params: [groupId],
      key: "gm.organization_membership_id",
    },
    page,
  );
  return checkedPageStatement(
    {
      sql:
        `SELECT 1 AS ck_live${cursor.sql} FROM org_groups g ` +
        `WHERE g.id = ? AND g.organization_id = ? AND ${LIVE_GROUP}`,
      params: [...cursor.params, groupId, organizationId],
    },
    {
      sql:
        `SELECT k.pg_linkId, ${MEMBERSHIP_COLUMNS} FROM (${links.sql}) k ` +
        "LEFT JOIN organization_memberships m ON m.id = k.pg_linkId",
      params: links.params,
    },
  );
}

/**
 * One page of a group's members, newest first by default, with the checks it
 * needs: `live` whether the group is live in a live organization, `cursorOk`
 * whether the page's cursor names a membership of its organization. The
 * caller discards the page when either check fails.
 */
export async function listGroupMembers(
  db: EntityManager,
  organizationId: string,
  groupId: string,
  page: PageRequest,
): Promise<CheckedPage<Membership>> {
  return selectCheckedPage(
    db,
    groupMembersPageStatement(organizationId, groupId, page),
    page,
    (r: MembershipRowOfPage & { pg_linkId: string | null }) => r.pg_linkId,
    // A link whose membership is gone (never committed so; defensive) is left out.
    (r) => (r.id ? membershipOfRow(r) : undefined),
  );
}

/** ListGroupsForOrganizationMembership's page of a membership's live groups, newest first by default. */
export function groupsOfMemberStatement(
  db: EntityManager | Dialect,
  membershipId: string,
  page: PageRequest,
): Statement {
  return keysetStatement(
    {
      columns: GROUP_COLUMNS,
      from:
        indexed(db, "group_memberships", "gm", "ix_group_memberships_member") +
        " " +
        "JOIN org_groups g ON g.id = gm.group_id AND g.deleted_at IS NULL",
      where: ["gm.organization_membership_id = ?"],
      params: [membershipId],
      key: "gm.group_id",
    },
    page,
  );
}

/**
 * Everything ListGroupsForOrganizationMembership reads, as one statement, so
 * that MariaDB runs it prepared (a fifth less of its CPU than the membership
 * and the page as a two-statement round trip, measured on the raw baseline):
 * a row per group of the page, each carrying the membership's organization
 * (`m_organizationId`); one row with null group columns when the page is empty;
 * none when the membership or its organization is gone. With a cursor,
 * `ck_cursorOk` tells whether it names a group of the membership's organization.
 */
export function groupsOfMemberWithMembershipStatement(
  db: EntityManager | Dialect,
  membershipId: string,
  page: PageRequest,
): Statement {
  const cursor = cursorCheck(page, "org_groups", {
    sql: "cc.organization_id = m.organization_id AND cc.deleted_at IS NULL",
    params: [],
  });
  const membership = membershipStatement(
    membershipId,
    "m.organization_id AS m_organizationId" + cursor.sql,
  );
  return checkedPageStatement(
    { sql: membership.sql, params: [...cursor.params, ...membership.params] },
    groupsOfMemberStatement(db, membershipId, page),
  );
}

/** One ListGroupsForOrganizationMembership question: a page of a membership's groups. */
export interface GroupsOfMemberAsk {
  membershipId: string;
  page: PageRequest;
}

/**
 * ListGroupsForOrganizationMembership's reads: the membership's organization
 * (undefined if the membership or its organization is gone), whether the
 * page's cursor names a group of the membership's organization, and the page.
 * The caller discards the page when either check fails.
 */
export interface GroupsOfMember {
  membership?: Pick<Membership, "organizationId">;
  cursorInOrganization: boolean;
  page: Page<Group>;
}

/**
 * Each ask's answer, in order. First pages (no cursor) of one order are read
 * together by firstPagesStatement; the asks it leaves unanswered, and pages
 * after a cursor, go by shape (the same direction, limit and cursor presence)
 * in one statement each (see selectParts).
 */
export async function groupsOfMembers(
  db: EntityManager,
  asks: readonly GroupsOfMemberAsk[],
): Promise<GroupsOfMember[]> {
  const answers: GroupsOfMember[] = [];
  const firstPages = new Map<string, number[]>();
  const afterCursor: number[] = [];
  asks.forEach((ask, i) => {
    if (ask.page.before !== undefined || ask.page.after !== undefined) afterCursor.push(i);
    else listIn(firstPages, ask.page.order).push(i);
  });
  await Promise.all([
    ...[...firstPages.values()].map(async (indexes) => {
      const left = await readFirstPages(db, asks, indexes, answers);
      await readPagesByShape(db, asks, left, answers);
    }),
    readPagesByShape(db, asks, afterCursor, answers),
  ]);
  return answers;
}

/**
 * Links a batch of first pages may read at least per membership: a batch of
 * memberships in up to this many groups each is answered by the shared
 * statement whatever the pages' limits (the default is 10), so memberships in
 * 20 groups, as is common, do not send their batch a second statement.
 */
const FIRST_PAGE_LINKS = 32;

/**
 * First pages of several memberships' groups, in one order, as one
 * statement: the memberships that are live (in a live organization), each a
 * row with its organization (`m_id`, `m_organizationId`), and the first
 * `budget` links of all of them to live groups, in (membership, group) order
 * of the scan, each a row with its group (`pg_member` and the group's
 * columns). One descent of the member index per membership, where a UNION
 * ALL part per membership cost MariaDB about twice the CPU per list
 * (BENCHMARKS.md); the budget bounds the rows one membership in thousands of
 * groups makes the statement read.
 */
export function firstPagesStatement(
  db: EntityManager | Dialect,
  membershipIds: readonly string[],
  order: SortOrder,
  budget: number,
): Statement {
  const ids = padded(membershipIds);
  const direction = order === "asc" ? "ASC" : "DESC";
  return {
    sql:
      "SELECT NULL AS m_id, NULL AS m_organizationId, pg.* FROM (" +
      `SELECT gm.organization_membership_id AS pg_member, ${GROUP_COLUMNS} ` +
      `FROM ${indexed(db, "group_memberships", "gm", "ix_group_memberships_member")} ` +
      "JOIN org_groups g ON g.id = gm.group_id AND g.deleted_at IS NULL " +
      `WHERE gm.organization_membership_id IN ${placeholders(ids)} ` +
      `ORDER BY gm.organization_membership_id ${direction}, gm.group_id ${direction} LIMIT ?` +
      ") pg UNION ALL " +
      `SELECT m.id, m.organization_id, ${PAGE_COLUMN_NULLS} FROM organization_memberships m ` +
      "JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL " +
      `WHERE m.id IN ${placeholders(ids)}`,
    params: [...ids, budget, ...ids],
  };
}

/** NULL for each page column of firstPagesStatement (pg_member and the group's), on a membership's row. */
const PAGE_COLUMN_NULLS = Array<string>(1 + columnCount(GROUP_COLUMNS))
  .fill("NULL")
  .join(", ");

/** A firstPagesStatement row: a live membership's, or a link's with its group. */
export type FirstPagesRow = GroupRowOfPage &
  CheckedRow & {
    m_id: string | null;
    m_organizationId: string | null;
    pg_member: string | null;
  };

/**
 * The asks a firstPagesStatement answered, from its rows: `budget` is the
 * number of links it was allowed to read. Its links are a prefix of every
 * asked membership's links in scan order, so when fewer than the budget came
 * back every membership's are all there; otherwise those of the memberships
 * the scan passed are, and the last one's suffice if it reached past its page.
 * Answers are set in `answers`; the indexes of the others are returned.
 */
export function firstPagesFrom(
  rows: readonly FirstPagesRow[],
  asks: readonly GroupsOfMemberAsk[],
  indexes: readonly number[],
  budget: number,
  answers: GroupsOfMember[],
): number[] {
  const ascending = indexes.length > 0 && scansAscending(asks[indexes[0]].page);
  const organizations = new Map<string, string>();
  const links = new Map<string, FirstPagesRow[]>();
  let scanned = 0;
  // The membership of the scan's last link: the scan ran in membership order.
  let last = "";
  for (const row of rows) {
    if (row.m_id !== null) {
      organizations.set(row.m_id, row.m_organizationId!);
      continue;
    }
    const id = row.pg_member!;
    listIn(links, id).push(row);
    if (scanned++ === 0 || (ascending ? id > last : id < last)) last = id;
  }
  const complete = ({ membershipId: id, page }: GroupsOfMemberAsk) => {
    if (scanned < budget) return true;
    if (id === last) return (links.get(id)?.length ?? 0) > page.limit;
    return ascending ? id < last : id > last;
  };
  const left: number[] = [];
  for (const i of indexes) {
    const ask = asks[i];
    if (!complete(ask)) {
      left.push(i);
      continue;
    }
    const organizationId = organizations.get(ask.membershipId);
    const mine = organizationId === undefined ? [] : (links.get(ask.membershipId) ?? []);
    answers[i] = {
      membership: organizationId === undefined ? undefined : { organizationId },
      cursorInOrganization: organizationId !== undefined,
      page: checkedPageOf(mine, ask.page, (r) => r.id, groupOfRow).page,
    };
  }
  return left;
}

/** Reads the first pages of `indexes` (asks of one order, no cursor) together; returns those left. */
async function readFirstPages(
  db: EntityManager,
  asks: readonly GroupsOfMemberAsk[],
  indexes: readonly number[],
  answers: GroupsOfMember[],
): Promise<number[]> {
  const rowsNeeded = new Map<string, number>();
  for (const i of indexes) {
    const { membershipId, page } = asks[i];
    rowsNeeded.set(membershipId, Math.max(rowsNeeded.get(membershipId) ?? 0, page.limit + 1));
  }
  let budget = 0;
  for (const rows of rowsNeeded.values()) budget += Math.max(rows, FIRST_PAGE_LINKS);
  const { sql, params } = firstPagesStatement(
    db,
    [...rowsNeeded.keys()],
    asks[indexes[0]].page.order,
    budget,
  );
  const rows = await select<FirstPagesRow>(db, sql, params);
  return firstPagesFrom(rows, asks, indexes, budget, answers);
}

/** Reads the asks of `indexes` by shape, one statement per shape (see selectParts). */
async function readPagesByShape(
  db: EntityManager,
  asks: readonly GroupsOfMemberAsk[],
  indexes: readonly number[],
  answers: GroupsOfMember[],
): Promise<void> {
  const shapes = new Map<string, { ask: number; statement: Statement }[]>();
  for (const ask of indexes) {
    const statement = groupsOfMemberWithMembershipStatement(
      db,
      asks[ask].membershipId,
      asks[ask].page,
    );
    listIn(shapes, statement.sql).push({ ask, statement });
  }
  await Promise.all(
    [...shapes.values()].map(async (same) => {
      const { page } = asks[same[0].ask];
      const padding = groupsOfMemberWithMembershipStatement(db, "", page);
      const rows = await selectParts<GroupOfMemberRow>(
        db,
        same.map((s) => s.statement),
        padding,
      );
      same.forEach(({ ask }, i) => (answers[ask] = groupsOfMemberFrom(rows[i], asks[ask].page)));
    }),
  );
}

/** The list `map` holds under `key`, made empty if it has none. */
function listIn<K, V>(map: Map<K, V[]>, key: K): V[] {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  return list;
}

/** The columns of a select list: its commas outside parentheses, plus one. */
function columnCount(list: string): number {
  let depth = 0;
  let count = 1;
  for (const c of list) {
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) count++;
  }
  return count;
}

/** A groupsOfMemberWithMembershipStatement row. */
type GroupOfMemberRow = GroupRowOfPage & CheckedRow & { m_organizationId: string };

/** One ask's answer from its groupsOfMemberWithMembershipStatement rows. */
function groupsOfMemberFrom(rows: GroupOfMemberRow[], page: PageRequest): GroupsOfMember {
  const found = checkedPageOf(rows, page, (r) => r.id, groupOfRow);
  return {
    membership: found.live ? { organizationId: rows[0].m_organizationId } : undefined,
    cursorInOrganization: found.live && found.cursorOk,
    page: found.page,
  };
}

/** Deletes up to `max` group memberships of the given groups, in key order; returns how many went. */
export async function deleteMembershipsOfGroupsChunk(
  tx: EntityManager,
  groupIds: string[],
  max: number,
): Promise<number> {
  if (groupIds.length === 0) return 0;
  return deleteLimited(
    tx,
    "group_memberships",
    `group_id IN ${placeholders(groupIds)}`,
    groupIds,
    max,
    "group_id, organization_membership_id",
  );
}

/** Deletes every group membership of the given groups (few, in the organization reaper). */
export async function deleteMembershipsOfGroups(
  tx: EntityManager,
  groupIds: string[],
): Promise<void> {
  if (groupIds.length === 0) return;
  await tx
    .createQueryBuilder()
    .delete()
    .from(GroupMembershipEntity)
    .where("group_id IN (:...groupIds)", { groupIds })
    .execute();
}
