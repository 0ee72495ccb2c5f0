import type { EntityManager } from "typeorm";
import type { Group, PageRequest } from "../domain/model.js";
import { GroupEntity, type GroupRow } from "./entities.js";
import type { NewEvent } from "../domain/events.js";
import {
  execute,
  executeAll,
  indexed,
  lockClause,
  padded,
  placeholders,
  readTime,
  select,
  upsertAddSql,
  type Dialect,
  type Statement,
} from "./dialect.js";
import { liveOrganizationChecks, organizationIsLive } from "./organizations.js";
import { eventStatements } from "./outbox.js";
import {
  checkedPageStatement,
  cursorCheck,
  GROUP_COLUMNS,
  keysetStatement,
  selectCheckedPage,
  type CheckedPage,
  reviveRow,
} from "./pagination.js";

const toGroup = ({ deletedAt: _deleted, ...group }: GroupRow): Group => group;

/**
 * Inserts a new group and appends its events (see outbox.ts) in one round
 * trip: with START TRANSACTION riding on the organization check before it and
 * COMMIT after, CreateGroup without a request_id is three round trips.
 */
export async function insertGroup(
  tx: EntityManager,
  group: Group,
  events: NewEvent[],
): Promise<void> {
  await executeAll(tx, [insertGroupStatement(group), ...eventStatements(tx, events)]);
}

/** The INSERT of a new group row. */
export function insertGroupStatement(group: Group): Statement {
  return {
    sql:
      "INSERT INTO org_groups (id, organization_id, name, description, member_count, version, " +
      "created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
    params: [
      group.id,
      group.organizationId,
      group.name,
      group.description,
      group.memberCount,
      group.version,
      group.createdAt,
      group.updatedAt,
    ],
  };
}

/**
 * A live group of a live organization, in one round trip. `lock`: "update"
 * for changes to the group itself (rename, delete, reaping), which then wait
 * for every change in flight to its members; "share" for changes to its
 * members, which run side by side (their counts go to separate rows, see
 * adjustMemberCount) but never beside a rename or delete. The organization is
 * checked in a subquery, which InnoDB reads without locking, so changes to
 * different groups of one organization do not queue behind each other.
 */
export async function findGroup(
  db: EntityManager,
  organizationId: string,
  id: string,
  opts: { lock?: "update" | "share" } = {},
): Promise<Group | undefined> {
  const { sql, params } = groupStatement(db, organizationId, id, opts);
  const [row] = await select<Group>(db, sql, params);
  return row ? reviveRow(row) : undefined;
}

/** One GetGroup question: the live group `groupId` of organization `organizationId`. */
export interface GroupAsk {
  organizationId: string;
  groupId: string;
}

/**
 * Each ask's live group (undefined if it is not one, or not of the ask's
 * organization), in order, from one statement: the asked ids in one IN list
 * (padded, see padded), so many calls' reads cost MariaDB one statement and
 * the service one round trip.
 */
export async function liveGroups(
  db: EntityManager,
  asks: readonly GroupAsk[],
): Promise<(Group | undefined)[]> {
  const ids = padded([...new Set(asks.map((a) => a.groupId))]);
  const rows = await select<Group>(
    db,
    `SELECT ${GROUP_COLUMNS} FROM org_groups g WHERE g.id IN ${placeholders(ids)} AND ${LIVE_GROUP}`,
    ids,
  );
  const byId = new Map(rows.map((r) => [r.id, reviveRow(r)]));
  return asks.map((a) => {
    const group = byId.get(a.groupId);
    return group?.organizationId === a.organizationId ? group : undefined;
  });
}

/** The WHERE condition (on `g`) of a group that is live in a live organization. */
export const LIVE_GROUP = `g.deleted_at IS NULL AND ${organizationIsLive("g.organization_id")}`;

/** The live group of a live organization, with its member count, optionally locked. */
export function groupStatement(
  db: EntityManager | Dialect,
  organizationId: string,
  id: string,
  opts: { lock?: "update" | "share" } = {},
): Statement {
  return {
    sql:
      `SELECT ${GROUP_COLUMNS} FROM org_groups g WHERE g.id = ? AND g.organization_id = ? AND ${LIVE_GROUP}` +
      (opts.lock ? lockClause(db, opts.lock) : ""),
    params: [id, organizationId],
  };
}

/**
 * ListGroups' reads in one statement (see checkedPageStatement): whether the
 * organization is live, whether the page's cursor names a group of it, and a
 * page of its live groups. The caller discards the page when either check fails.
 */
export async function listGroups(
  db: EntityManager,
  organizationId: string,
  page: PageRequest,
): Promise<CheckedPage<Group>> {
  const cursor = cursorCheck(page, "org_groups", {
    sql: "cc.organization_id = o.id AND cc.deleted_at IS NULL",
    params: [],
  });
  const statement = checkedPageStatement(
    liveOrganizationChecks(organizationId, cursor),
    keysetStatement(
      {
        columns: GROUP_COLUMNS,
        from: indexed(db, "org_groups", "g", "ix_groups_org_id"),
        where: ["g.organization_id = ?", "g.deleted_at IS NULL"],
        params: [organizationId],
        key: "g.id",
      },
      page,
    ),
  );
  return selectCheckedPage(db, statement, page, (r: GroupRowOfPage) => r.id, groupOfRow);
}

/** A page row with a group's columns (null on the row of an empty page). */
export type GroupRowOfPage = { [K in keyof Group]: Group[K] | null };

/** The group columns of a page row that holds a group (pageOf revives times and counts). */
export const groupOfRow = (r: GroupRowOfPage): Group =>
  ({
    id: r.id,
    organizationId: r.organizationId,
    name: r.name,
    description: r.description,
    memberCount: r.memberCount,
    version: r.version,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }) as Group;

export async function updateGroup(
  tx: EntityManager,
  id: string,
  changes: Partial<Pick<Group, "name" | "description" | "version" | "updatedAt">>,
): Promise<void> {
  await tx.update(GroupEntity, { id }, changes);
}

/** Delta rows per group: enough that 16–64 concurrent writers rarely pick the same one. */
export const MEMBER_COUNT_SHARDS = 16;

/**
 * Adds `delta` (±) to the group's member count, in one of its delta rows
 * picked at random, so concurrent changes to one group lock different rows.
 * The caller holds the group row's lock (share or update), so a rename or
 * delete sees every committed delta and none in flight.
 */
export async function adjustMemberCount(
  tx: EntityManager,
  id: string,
  delta: number,
): Promise<void> {
  if (delta === 0) return;
  const { sql, params } = memberCountStatement(tx, id, delta);
  await execute(tx, sql, params);
}

/** The statement of adjustMemberCount, for a caller that sends it with its other writes. */
export function memberCountStatement(tx: EntityManager, id: string, delta: number): Statement {
  return memberCountsStatement(tx, new Map([[id, delta]]));
}

/** adjustMemberCount for several groups in one statement, their rows in group id order. */
export function memberCountsStatement(
  db: EntityManager | Dialect,
  deltas: ReadonlyMap<string, number>,
): Statement {
  const ids = [...deltas.keys()].sort();
  return {
    sql: upsertAddSql(db, "group_member_counts", ["group_id", "shard"], "delta", ids.length),
    params: ids.flatMap((id) => [
      id,
      Math.floor(Math.random() * MEMBER_COUNT_SHARDS),
      Math.trunc(deltas.get(id)!),
    ]),
  };
}

/** Groups with at least `minRows` delta rows of their member count, at most `max` of them. */
export async function groupsWithCountDeltas(
  db: EntityManager,
  minRows: number,
  max: number,
): Promise<string[]> {
  const rows = await select<{ id: string }>(
    db,
    "SELECT group_id AS id FROM group_member_counts GROUP BY group_id " +
      `HAVING COUNT(*) >= ? LIMIT ${Math.trunc(max)}`,
    [minRows],
  );
  return rows.map((r) => r.id);
}

/**
 * Folds a group's delta rows into org_groups.member_count, so that reading
 * the count sums fewer rows. Under the group row's exclusive lock: member
 * changes hold its share lock until they commit, so none is in flight
 * meanwhile, and none of its deltas is missed or counted twice. A read
 * without locks is one statement, so it sees the count before or after.
 */
export async function foldMemberCount(tx: EntityManager, id: string): Promise<void> {
  const [locked] = await select<{ id: string }>(
    tx,
    `SELECT id FROM org_groups WHERE id = ?${lockClause(tx, "update")}`,
    [id],
  );
  if (!locked) return;
  await execute(
    tx,
    "UPDATE org_groups SET member_count = member_count + COALESCE(" +
      "(SELECT SUM(c.delta) FROM group_member_counts c WHERE c.group_id = ?), 0) WHERE id = ?",
    [id, id],
  );
  await execute(tx, "DELETE FROM group_member_counts WHERE group_id = ?", [id]);
}

/** Hides the group from every read; the reaper (see deletion-jobs) removes its group memberships in chunks. */
export async function markGroupDeleted(tx: EntityManager, id: string, at: Date): Promise<void> {
  await tx.update(GroupEntity, { id }, { deletedAt: at });
}

/** Up to `max` groups (live or being deleted) of an organization, locked for update, for the reaper. */
export async function lockGroupsOfOrganization(
  tx: EntityManager,
  organizationId: string,
  max: number,
): Promise<GroupRow[]> {
  const rows = await select<GroupRow>(
    tx,
    `SELECT ${GROUP_COLUMNS}, g.deleted_at AS deletedAt FROM org_groups g
     WHERE g.organization_id = ? ORDER BY g.id ASC LIMIT ${Math.trunc(max)}` +
      lockClause(tx, "update"),
    [organizationId],
  );
  return rows.map((r) => ({
    ...reviveRow(r),
    deletedAt: r.deletedAt === null ? null : readTime(r.deletedAt),
  }));
}

/** A keyset page of the ids of an organization's groups, deleted ones included, after `after`. */
export async function groupIdsOfOrganization(
  db: EntityManager,
  organizationId: string,
  after: string,
  max: number,
): Promise<string[]> {
  const rows = await select<{ id: string }>(
    db,
    `SELECT g.id AS id FROM org_groups g WHERE g.organization_id = ? AND g.id > ?
     ORDER BY g.id ASC LIMIT ${Math.trunc(max)}`,
    [organizationId, after],
  );
  return rows.map((r) => r.id);
}

/** Locks the groups among `ids` for update, in id order (a fixed lock order avoids deadlocks). */
export async function lockGroups(tx: EntityManager, ids: string[]): Promise<Group[]> {
  if (ids.length === 0) return [];
  const rows = await select<Group>(
    tx,
    `SELECT ${GROUP_COLUMNS} FROM org_groups g WHERE g.id IN ${placeholders(ids)} ORDER BY g.id ASC` +
      lockClause(tx, "update"),
    ids,
  );
  return rows.map(reviveRow);
}

/** Deletes groups with their member count rows (their links must be gone already). */
export async function deleteGroupRows(tx: EntityManager, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await execute(tx, `DELETE FROM group_member_counts WHERE group_id IN ${placeholders(ids)}`, ids);
  await tx.delete(GroupEntity, ids);
}
