import type { EntityManager } from "typeorm";
import type { Membership, MembershipStatus, Page, PageRequest } from "../domain/model.js";
import { MembershipEntity } from "./entities.js";
import { deleteAllGroupMembershipsOf } from "./group-members.js";
import { forUpdate, indexed, lockClause, select, type Statement } from "./dialect.js";
import { keysetPage, MEMBERSHIP_COLUMNS, reviveRow } from "./pagination.js";

export async function insertMembership(tx: EntityManager, m: Membership): Promise<void> {
  await tx.insert(MembershipEntity, m);
}

/**
 * A membership of a live organization; `lock` takes its row for update so a
 * concurrent delete and a group change cannot interleave.
 */
export async function findMembership(
  db: EntityManager,
  id: string,
  opts: { lock?: boolean } = {},
): Promise<Membership | undefined> {
  const { sql, params } = membershipStatement(id);
  const [row] = await select<Membership>(
    db,
    sql + (opts.lock ? lockClause(db, "update") : ""),
    params,
  );
  return row === undefined ? undefined : reviveRow(row);
}

/** The membership, if its organization is live (`columns` may add to or rename the select list). */
export const membershipStatement = (id: string, columns = MEMBERSHIP_COLUMNS): Statement => ({
  sql:
    `SELECT ${columns} FROM organization_memberships m WHERE m.id = ? AND ` +
    "EXISTS (SELECT 1 FROM organizations o WHERE o.id = m.organization_id AND o.deleted_at IS NULL)",
  params: [id],
});

export interface MembershipFilter {
  organizationId?: string;
  userId?: string;
}

/**
 * One page of memberships by organization and/or user. With an organization
 * filter the caller has checked that the organization is live; by user alone,
 * memberships of deleted organizations are joined away.
 */
export async function listMemberships(
  db: EntityManager,
  filter: MembershipFilter,
  page: PageRequest,
): Promise<Page<Membership>> {
  const where: string[] = [];
  const params: unknown[] = [];
  let from = "organization_memberships m";
  if (filter.organizationId) {
    where.push("m.organization_id = ?");
    params.push(filter.organizationId);
  }
  if (filter.userId) {
    where.push("m.user_id = ?");
    params.push(filter.userId);
  }
  if (filter.organizationId && !filter.userId) {
    from = indexed(db, "organization_memberships", "m", "ix_memberships_org_id");
  } else if (filter.userId && !filter.organizationId) {
    from =
      indexed(db, "organization_memberships", "m", "ix_memberships_user_id") +
      " " +
      "JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL";
  }
  return keysetPage<Membership>(
    db,
    { columns: MEMBERSHIP_COLUMNS, from, where, params, key: "m.id" },
    page,
    (m) => m.id,
  );
}

/** True if a membership with this id matches the filter (a valid cursor). */
export async function membershipMatches(
  db: EntityManager,
  id: string,
  filter: MembershipFilter,
): Promise<boolean> {
  const qb = db.createQueryBuilder(MembershipEntity, "m").where("m.id = :id", { id });
  if (filter.organizationId)
    qb.andWhere("m.organization_id = :org", { org: filter.organizationId });
  if (filter.userId) qb.andWhere("m.user_id = :user", { user: filter.userId });
  return (await qb.getCount()) > 0;
}

export async function updateMembershipStatus(
  tx: EntityManager,
  id: string,
  status: MembershipStatus,
  at: Date,
): Promise<void> {
  await tx.update(MembershipEntity, { id }, { status, updatedAt: at });
}

export async function deleteMembershipRow(tx: EntityManager, id: string): Promise<void> {
  await tx.delete(MembershipEntity, { id });
}

/** Deletes up to `max` memberships of an organization; returns how many went. */
export async function deleteMembershipsOfOrganization(
  tx: EntityManager,
  organizationId: string,
  max: number,
): Promise<number> {
  const ids = await forUpdate(
    tx
      .createQueryBuilder(MembershipEntity, "m")
      .select("m.id", "id")
      .where("m.organization_id = :organizationId", { organizationId })
      .limit(max),
  ).getRawMany<{ id: string }>();
  if (ids.length === 0) return 0;
  // Links added by calls that raced the organization's deletion go first.
  await deleteAllGroupMembershipsOf(
    tx,
    ids.map((r) => r.id),
  );
  await tx.delete(
    MembershipEntity,
    ids.map((r) => r.id),
  );
  return ids.length;
}
