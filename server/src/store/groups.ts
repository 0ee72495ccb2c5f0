import type { EntityManager } from "typeorm";
import type { Group, Page, PageRequest } from "../domain/model.js";
import { GroupEntity, type GroupRow } from "./entities.js";
import { execute, forUpdate, indexed, lockClause, select } from "./dialect.js";
import { GROUP_COLUMNS, keysetPage, reviveTimes } from "./pagination.js";

const toGroup = ({ deletedAt: _deleted, ...group }: GroupRow): Group => group;

export async function insertGroup(tx: EntityManager, group: Group): Promise<void> {
  await tx.insert(GroupEntity, { ...group, deletedAt: null });
}

/**
 * A live group of a live organization, in one round trip. With `lock` the
 * group row is locked for update: every change to a group or its members
 * takes this lock first, which serialises them per group, keeps member_count
 * exact and gives their outbox rows commit order. The organization is checked
 * in a subquery, which InnoDB reads without locking, so changes to different
 * groups of one organization do not queue behind each other.
 */
export async function findGroup(
  db: EntityManager,
  organizationId: string,
  id: string,
  opts: { lock?: boolean } = {},
): Promise<Group | undefined> {
  const [row] = await select<Group>(
    db,
    `SELECT ${GROUP_COLUMNS} FROM org_groups g
     WHERE g.id = ? AND g.organization_id = ? AND g.deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = g.organization_id AND o.deleted_at IS NULL)` +
      (opts.lock ? lockClause(db) : ""),
    [id, organizationId],
  );
  return row ? reviveTimes(row) : undefined;
}

/** One page of an organization's live groups (the caller has checked the organization). */
export async function listGroups(
  db: EntityManager,
  organizationId: string,
  page: PageRequest,
): Promise<Page<Group>> {
  return keysetPage<Group>(
    db,
    {
      columns: GROUP_COLUMNS,
      from: indexed(db, "org_groups", "g", "ix_groups_org_id"),
      where: ["g.organization_id = ?", "g.deleted_at IS NULL"],
      params: [organizationId],
      key: "g.id",
    },
    page,
    (g) => g.id,
  );
}

export async function updateGroup(
  tx: EntityManager,
  id: string,
  changes: Partial<Pick<Group, "name" | "description" | "version" | "updatedAt">>,
): Promise<void> {
  await tx.update(GroupEntity, { id }, changes);
}

/** Adds `delta` (±) to member_count; the caller holds the group's row lock. */
export async function adjustMemberCount(
  tx: EntityManager,
  id: string,
  delta: number,
): Promise<void> {
  if (delta === 0) return;
  const sign = delta > 0 ? "+" : "-";
  await execute(tx, `UPDATE org_groups SET member_count = member_count ${sign} ? WHERE id = ?`, [
    Math.abs(Math.trunc(delta)),
    id,
  ]);
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
  return forUpdate(
    tx
      .createQueryBuilder(GroupEntity, "g")
      .where("g.organization_id = :organizationId", { organizationId })
      .orderBy("g.id", "ASC")
      .limit(max),
  ).getMany();
}

/** Locks the live groups among `ids` of an organization, in id order (a fixed lock order avoids deadlocks). */
export async function lockGroups(tx: EntityManager, ids: string[]): Promise<Group[]> {
  if (ids.length === 0) return [];
  const rows = await forUpdate(
    tx
      .createQueryBuilder(GroupEntity, "g")
      .where("g.id IN (:...ids)", { ids })
      .orderBy("g.id", "ASC"),
  ).getMany();
  return rows.map(toGroup);
}

export async function deleteGroupRows(tx: EntityManager, ids: string[]): Promise<void> {
  if (ids.length > 0) await tx.delete(GroupEntity, ids);
}

/** True if the id names a live group of the organization (a valid cursor). */
export async function groupInOrganization(
  db: EntityManager,
  organizationId: string,
  id: string,
): Promise<boolean> {
  return (
    (await db
      .createQueryBuilder(GroupEntity, "g")
      .where("g.id = :id AND g.organization_id = :organizationId", { id, organizationId })
      .getCount()) > 0
  );
}
