import type { EntityManager } from "typeorm";
import type { Organization, Page, PageRequest } from "../domain/model.js";
import { OrganizationEntity, type OrganizationRow } from "./entities.js";
import { forUpdate, select } from "./dialect.js";
import { keysetPage, ORGANIZATION_COLUMNS } from "./pagination.js";

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

/** Live organizations, or only `onlyId` when given. */
export async function listOrganizations(
  db: EntityManager,
  page: PageRequest,
  onlyId?: string,
): Promise<Page<Organization>> {
  return keysetPage<Organization>(
    db,
    {
      columns: ORGANIZATION_COLUMNS,
      from: "organizations o",
      where: onlyId ? ["o.deleted_at IS NULL", "o.id = ?"] : ["o.deleted_at IS NULL"],
      params: onlyId ? [onlyId] : [],
      key: "o.id",
    },
    page,
    (o) => o.id,
  );
}

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
