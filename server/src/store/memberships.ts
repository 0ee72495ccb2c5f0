import type { EntityManager } from "typeorm";
import type { Membership, MembershipStatus, PageRequest } from "../domain/model.js";
import { MembershipEntity } from "./entities.js";
import { deleteAllGroupMembershipsOf } from "./group-members.js";
import { liveOrganizationChecks, organizationIsLive } from "./organizations.js";
import { forUpdate, indexed, lockClause, select, type Statement } from "./dialect.js";
import {
  checkedPageStatement,
  cursorCheck,
  keysetStatement,
  MEMBERSHIP_COLUMNS,
  reviveRow,
  selectCheckedPage,
  type CheckedPage,
} from "./pagination.js";

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
    organizationIsLive("m.organization_id"),
  params: [id],
});

export interface MembershipFilter {
  organizationId?: string;
  userId?: string;
}

/**
 * ListOrganizationMemberships' reads in one statement (see
 * checkedPageStatement): whether the organization of the filter is live
 * (always true by user alone), whether the page's cursor names a membership
 * that matches the filter, and a page of the matching memberships — by user
 * alone, memberships of deleted organizations are joined away. The caller
 * discards the page when either check fails.
 */
export async function listMemberships(
  db: EntityManager,
  filter: MembershipFilter,
  page: PageRequest,
): Promise<CheckedPage<Membership>> {
  const matching = (
    [
      ["organization_id", filter.organizationId],
      ["user_id", filter.userId],
    ] as const
  ).filter(([, value]) => value);
  const where = matching.map(([column]) => `m.${column} = ?`);
  const params = matching.map(([, value]) => value);
  let from = "organization_memberships m";
  if (filter.organizationId && !filter.userId) {
    from = indexed(db, "organization_memberships", "m", "ix_memberships_org_id");
  } else if (filter.userId && !filter.organizationId) {
    from =
      indexed(db, "organization_memberships", "m", "ix_memberships_user_id") +
      " " +
      "JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL";
  }
  const cursorWhere = matching.map(([column]) => `cc.${column} = ?`);
  // Listed by user alone, a membership of a deleted organization is left out, so it is
  // no cursor either (with an organization, the checks require that one to be live).
  if (!filter.organizationId) cursorWhere.push(organizationIsLive("cc.organization_id"));
  const cursor = cursorCheck(page, "organization_memberships", {
    sql: cursorWhere.join(" AND "),
    params,
  });
  const checks = filter.organizationId
    ? liveOrganizationChecks(filter.organizationId, cursor)
    : { sql: `SELECT 1 AS ck_live${cursor.sql}`, params: cursor.params };
  const statement = checkedPageStatement(
    checks,
    keysetStatement({ columns: MEMBERSHIP_COLUMNS, from, where, params, key: "m.id" }, page),
  );
  return selectCheckedPage(db, statement, page, (r: MembershipRowOfPage) => r.id, membershipOfRow);
}

/** A page row with a membership's columns (null where a page row holds none). */
export type MembershipRowOfPage = { [K in keyof Membership]: Membership[K] | null };

/** The membership columns of a page row that holds a membership (pageOf revives times). */
export const membershipOfRow = (r: MembershipRowOfPage): Membership =>
  ({
    id: r.id,
    organizationId: r.organizationId,
    userId: r.userId,
    status: r.status,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }) as Membership;

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
