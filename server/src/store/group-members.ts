import type { EntityManager } from "typeorm";
import type { Group, Membership, Page, PageRequest } from "../domain/model.js";
import { GroupEntity, GroupMembershipEntity } from "./entities.js";
import { findMemberships, membershipStatement } from "./memberships.js";
import type { NewEvent } from "../domain/events.js";
import {
  deleteLimited,
  executeAll,
  indexed,
  placeholders,
  select,
  selectAll,
  type Dialect,
  type Statement,
} from "./dialect.js";
import { ConcurrentChange, isDuplicateKey } from "./errors.js";
import { groupStatement, memberCountStatement } from "./groups.js";
import { eventStatements } from "./outbox.js";
import {
  GROUP_COLUMNS,
  keysetPage,
  keysetStatement,
  MEMBER_COUNT,
  MEMBERSHIP_COLUMNS,
  pageOf,
  reviveRow,
} from "./pagination.js";

/**
 * The memberships among `ids` (any organization), each with whether it is
 * already linked to the group, and the group's member count — one statement,
 * so one consistent snapshot. A link added or removed by a concurrent change
 * after this snapshot makes the write fail and the transaction rerun (see
 * writeLinkChange).
 */
export function membershipsWithLinksStatement(groupId: string, ids: string[]): Statement {
  return {
    sql:
      `SELECT ${MEMBERSHIP_COLUMNS}, EXISTS (SELECT 1 FROM group_memberships gm ` +
      "WHERE gm.group_id = ? AND gm.organization_membership_id = m.id) AS linked, " +
      `(SELECT ${MEMBER_COUNT} FROM org_groups g WHERE g.id = ?) AS memberCount ` +
      `FROM organization_memberships m WHERE m.id IN ${placeholders(ids)}`,
    params: [groupId, groupId, ...ids],
  };
}

/**
 * All a change to a group's members reads, in one round trip (selectAll): the
 * live group under `lock` (undefined if it or its organization is gone), then
 * — once the lock is held — the memberships with their links and the count
 * (membershipsWithLinksStatement). The group's memberCount is that count.
 */
export async function lockGroupForMemberChange(
  tx: EntityManager,
  ref: { organizationId: string; groupId: string },
  ids: string[],
  lock: "update" | "share",
): Promise<{
  group?: Group;
  found: Map<string, { membership: Membership; linked: boolean }>;
}> {
  const [groupRows, rows] = (await selectAll(tx, [
    groupStatement(tx, ref.organizationId, ref.groupId, { lock, count: false }),
    membershipsWithLinksStatement(ref.groupId, ids),
  ])) as [Group[], (Membership & { linked: number; memberCount: number | string | null })[]];
  const found = new Map(
    rows.map(({ linked, memberCount: _count, ...m }) => [
      m.id,
      { membership: reviveRow(m), linked: Number(linked) === 1 },
    ]),
  );
  if (groupRows.length === 0) return { found };
  const group = reviveRow(groupRows[0]);
  // With no membership found there is no count either; the change then fails (NOT_FOUND) anyway.
  group.memberCount = Number(rows[0]?.memberCount ?? 0);
  return { group, found };
}

/**
 * Writes one change to a group's members — the links, the member count and
 * the events — in one round trip (see executeAll). The links were read (in
 * lockGroupForMemberChange) without locking them, since changes to one group's
 * members run side by side; if another change linked or unlinked one of them
 * meanwhile, the insert meets a duplicate key or the delete finds fewer rows,
 * and this throws ConcurrentChange (the transaction then rolls back).
 *
 * COMMIT is not sent with it: a write can wait on a row lock (a link another
 * change is adding, a count row), and a call whose deadline passes meanwhile
 * must not commit after its caller was told it failed (Database checks the
 * deadline before COMMIT).
 */
export async function writeLinkChange(
  tx: EntityManager,
  change: {
    group: Pick<Group, "id" | "organizationId">;
    op: "add" | "remove";
    membershipIds: string[];
    events: NewEvent[];
    at: Date;
  },
): Promise<void> {
  const { group, op, membershipIds: ids } = change;
  if (ids.length === 0) return;
  const links: Statement =
    op === "add"
      ? {
          sql: `INSERT INTO group_memberships (group_id, organization_membership_id, organization_id, created_at)
       VALUES ${ids.map(() => "(?, ?, ?, ?)").join(", ")}`,
          params: ids.flatMap((id) => [group.id, id, group.organizationId, change.at]),
        }
      : {
          sql: `DELETE FROM group_memberships WHERE group_id = ? AND organization_membership_id IN ${placeholders(ids)}`,
          params: [group.id, ...ids],
        };
  let affected: number[];
  try {
    affected = await executeAll(tx, [
      links,
      memberCountStatement(tx, group.id, op === "add" ? ids.length : -ids.length),
      ...eventStatements(tx, change.events),
    ]);
  } catch (err) {
    if (op === "add" && isDuplicateKey(err, "PRIMARY"))
      throw new ConcurrentChange("link added meanwhile");
    throw err;
  }
  if (affected[0] !== ids.length) throw new ConcurrentChange("link changed meanwhile");
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

/**
 * CheckGroupMembership's one statement: the membership (if its organization
 * is live), joined to those of `groupIds` that are live groups it belongs to
 * — one row per such group, or one row with groupId NULL.
 */
export function membershipInGroupsStatement(membershipId: string, groupIds: string[]): Statement {
  return {
    sql:
      `SELECT ${MEMBERSHIP_COLUMNS}, g.id AS groupId FROM organization_memberships m ` +
      "JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL " +
      "LEFT JOIN (group_memberships gm JOIN org_groups g ON g.id = gm.group_id AND g.deleted_at IS NULL) " +
      `ON gm.organization_membership_id = m.id AND gm.group_id IN ${placeholders(groupIds)} ` +
      "WHERE m.id = ?",
    params: [...groupIds, membershipId],
  };
}

/** The membership (undefined if it or its organization is gone) and which of `groupIds` it is in. */
export async function membershipInGroups(
  db: EntityManager,
  membershipId: string,
  groupIds: string[],
): Promise<{ membership: Membership; groupIds: Set<string> } | undefined> {
  const { sql, params } = membershipInGroupsStatement(membershipId, groupIds);
  const rows = await select<Membership & { groupId: string | null }>(db, sql, params);
  if (rows.length === 0) return undefined;
  const { groupId: _g, ...membership } = rows[0];
  return {
    membership: reviveRow(membership),
    groupIds: new Set(rows.flatMap((r) => (r.groupId === null ? [] : [r.groupId]))),
  };
}

/**
 * One page of a group's members. The keyset runs on the group_memberships
 * primary key alone (a range scan, the same cost at any depth); the page's
 * memberships are then fetched by id. Joined in one statement, MariaDB drives
 * from organization_memberships and sorts the whole table.
 */
export async function listGroupMembers(
  db: EntityManager,
  groupId: string,
  page: PageRequest,
): Promise<Page<Membership>> {
  const links = await keysetPage<{ id: string }>(
    db,
    {
      columns: "gm.organization_membership_id AS id",
      from: "group_memberships gm",
      where: ["gm.group_id = ?"],
      params: [groupId],
      key: "gm.organization_membership_id",
    },
    page,
    (l) => l.id,
  );
  const found = await findMemberships(
    db,
    links.items.map((l) => l.id),
  );
  return { ...links, items: links.items.flatMap((l) => found.get(l.id) ?? []) };
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
 * Everything ListGroupsForOrganizationMembership reads, in one round trip
 * (selectAll): the membership (undefined if it or its organization is gone),
 * whether the page's cursor names a group of the membership's organization,
 * and the page. The caller discards the page when either check fails.
 */
export async function groupsOfMember(
  db: EntityManager,
  membershipId: string,
  page: PageRequest,
): Promise<{ membership?: Membership; cursorInOrganization: boolean; page: Page<Group> }> {
  const cursor = page.before ?? page.after;
  const [found, ...rest] = await selectAll(db, [
    membershipStatement(membershipId),
    ...(cursor === undefined
      ? []
      : [
          {
            sql:
              "SELECT 1 AS ok FROM org_groups g JOIN organization_memberships m " +
              "ON m.organization_id = g.organization_id WHERE g.id = ? AND m.id = ?",
            params: [cursor, membershipId],
          },
        ]),
    groupsOfMemberStatement(db, membershipId, page),
  ]);
  const groups = rest.at(-1) as Group[];
  return {
    membership: found[0] === undefined ? undefined : reviveRow(found[0] as Membership),
    cursorInOrganization: cursor === undefined || rest[0].length > 0,
    page: pageOf(groups, page, (g) => g.id),
  };
}

/** Deletes up to `max` group memberships of one group; returns how many went. */
export async function deleteMembershipsOfGroupChunk(
  tx: EntityManager,
  groupId: string,
  max: number,
): Promise<number> {
  return deleteLimited(
    tx,
    "group_memberships",
    "group_id = ?",
    [groupId],
    max,
    "organization_membership_id",
  );
}

/** Deletes up to `max` group memberships of an organization; returns how many went. */
export async function deleteMembershipsOfOrganizationChunk(
  tx: EntityManager,
  organizationId: string,
  max: number,
): Promise<number> {
  return deleteLimited(tx, "group_memberships", "organization_id = ?", [organizationId], max);
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
