import type { EntityManager } from "typeorm";
import type { Organization, PageRequest } from "../domain/model.js";
import { OrganizationEntity, type OrganizationRow } from "./entities.js";
import { forUpdate, select, type Statement } from "./dialect.js";
import {
  checkedPageStatement,
  cursorCheck,
  keysetStatement,
  ORGANIZATION_COLUMNS,
  selectCheckedPage,
  type CheckedPage,
} from "./pagination.js";

const toOrganization = ({ deletedAt: _deleted, ...org }: OrganizationRow): Organization => org;

export async function insertOrganization(tx: EntityManager, org: Organization): Promise<void> {
  await tx.insert(OrganizationEntity, { ...org, deletedAt: null });
}

/** A live (not deleted) organization, optionally locked for update. */
export async function findOrganization(
  db: EntityManager,
  id: string,
  opts: { lock?: boolean } = {},
): Promise<Organization | undefined> {
  const qb = db
    .createQueryBuilder(OrganizationEntity, "o")
    .where("o.id = :id AND o.deleted_at IS NULL", { id });
  if (opts.lock) forUpdate(qb);
  const row = await qb.getOne();
  return row ? toOrganization(row) : undefined;
}

export async function organizationExists(db: EntityManager, id: string): Promise<boolean> {
  const row: unknown[] = await select(
    db,
    "SELECT 1 FROM organizations WHERE id = ? AND deleted_at IS NULL",
    [id],
  );
  return row.length > 0;
}

/**
 * checkedPageStatement's checks for a list within one organization: a row
 * only while the organization is live, carrying `cursor`'s column.
 */
/** The condition that the organization `column` names is live (not deleted). */
export const organizationIsLive = (column: string): string =>
  `EXISTS (SELECT 1 FROM organizations o WHERE o.id = ${column} AND o.deleted_at IS NULL)`;

export const liveOrganizationChecks = (organizationId: string, cursor: Statement): Statement => ({
  sql: `SELECT 1 AS ck_live${cursor.sql} FROM organizations o WHERE o.id = ? AND o.deleted_at IS NULL`,
  params: [...cursor.params, organizationId],
});

/**
 * Live organizations, or only `onlyId` when given, in one statement (see
 * checkedPageStatement), with whether the page's cursor names a live
 * organization (`cursorOk`).
 */
export async function listOrganizations(
  db: EntityManager,
  page: PageRequest,
  onlyId?: string,
): Promise<CheckedPage<Organization>> {
  const cursor = cursorCheck(page, "organizations", { sql: "cc.deleted_at IS NULL", params: [] });
  const statement = checkedPageStatement(
    { sql: `SELECT 1 AS ck_live${cursor.sql}`, params: cursor.params },
    keysetStatement(
      {
        columns: ORGANIZATION_COLUMNS,
        from: "organizations o",
        where: onlyId ? ["o.deleted_at IS NULL", "o.id = ?"] : ["o.deleted_at IS NULL"],
        params: onlyId ? [onlyId] : [],
        key: "o.id",
      },
      page,
    ),
  );
  return selectCheckedPage(
    db,
    statement,
    page,
    (r: OrganizationRowOfPage) => r.id,
    organizationOfRow,
  );
}

type OrganizationRowOfPage = { [K in keyof Organization]: Organization[K] | null };

/** The organization columns of a page row that holds one (pageOf revives times). */
const organizationOfRow = (r: OrganizationRowOfPage) =>
  ({
    id: r.id,
    name: r.name,
    externalId: r.externalId,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  }) as Organization;

export async function updateOrganization(
  tx: EntityManager,
  id: string,
  changes: Partial<Pick<Organization, "name" | "externalId" | "updatedAt">>,
): Promise<void> {
  await tx.update(OrganizationEntity, { id }, changes);
}

/** Hides the organization from every read at once and frees its external id. */
export async function markOrganizationDeleted(
  tx: EntityManager,
  id: string,
  at: Date,
): Promise<void> {
  await tx.update(OrganizationEntity, { id }, { deletedAt: at, externalId: null });
}

export async function deleteOrganizationRow(tx: EntityManager, id: string): Promise<void> {
  await tx.delete(OrganizationEntity, { id });
}
