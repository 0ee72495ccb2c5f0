import type { Database } from "../store/database.js";
import { enqueueDeletion } from "../store/deletion-jobs.js";
import { isDuplicateKey } from "../store/errors.js";
import * as orgs from "../store/organizations.js";
import type { CallDeadline } from "./deadline.js";
import { DomainError, invalidArgument, organizationNotFound } from "./errors.js";
import { newId } from "./ids.js";
import type { Organization, Page } from "./model.js";
import { cursorOf, parsePage, type PageInput } from "./pagination.js";
import type { Reaper } from "./reaper.js";
import { Violations } from "./validation.js";

export const ORGANIZATION_NAME_MAX = 256;
export const EXTERNAL_ID_MAX = 128;

const externalIdTaken = (externalId: string) =>
  new DomainError(
    "already_exists",
    "ORGANIZATION_EXTERNAL_ID_TAKEN",
    `another organization already has external_id ${JSON.stringify(externalId)}`,
    [],
    { external_id: externalId },
  );

/** Organizations: the tenants every other object belongs to. */
export class Organizations {
  constructor(
    private readonly db: Database,
    private readonly reaper: Reaper,
  ) {}

  async create(
    input: { name: string; externalId: string },
    deadline: CallDeadline | undefined,
  ): Promise<Organization> {
    const v = new Violations();
    const name = v.text("name", input.name, { min: 1, max: ORGANIZATION_NAME_MAX, trim: true });
    const externalId =
      input.externalId === ""
        ? null
        : v.token("external_id", input.externalId, { min: 1, max: EXTERNAL_ID_MAX });
    v.throwIfAny();
    const at = new Date();
    const org: Organization = {
      id: newId("organization"),
      name,
      externalId,
      createdAt: at,
      updatedAt: at,
    };
    try {
      await this.db.transaction((tx) => orgs.insertOrganization(tx, org), deadline);
    } catch (err) {
      if (externalId && isDuplicateKey(err, "uq_organizations_external_id"))
        throw externalIdTaken(externalId);
      throw err;
    }
    return org;
  }

  async get(organizationId: string): Promise<Organization> {
    const v = new Violations();
    v.id("organization_id", "organization", organizationId);
    v.throwIfAny();
    const org = await orgs.findOrganization(this.db.reader, organizationId);
    if (!org) throw organizationNotFound(organizationId);
    return org;
  }

  /** `within`: a caller limited to one organization lists only that one. */
  async list(input: PageInput & { within?: string }): Promise<Page<Organization>> {
    const v = new Violations();
    const page = parsePage(v, input, "organization");
    v.throwIfAny();
    const cursor = cursorOf(page);
    const badCursor = (field: string) =>
      invalidArgument([{ field, description: "does not name an existing organization" }]);
    if (cursor && input.within !== undefined && cursor.id !== input.within) {
      throw badCursor(cursor.field);
    }
    const found = await orgs.listOrganizations(this.db.reader, page, input.within);
    if (cursor && !found.cursorOk) throw badCursor(cursor.field);
    return found.page;
  }

  /**
   * `within`: set for a caller limited to one organization. Such a caller may
   * not set external_id: it is unique across the deployment, so a conflict
   * would tell it that another organization uses that value.
   */
  async update(
    input: { organizationId: string; name?: string; externalId?: string; within?: string },
    deadline: CallDeadline | undefined,
  ): Promise<Organization> {
    if (input.within !== undefined && input.externalId !== undefined) {
      throw new DomainError(
        "permission_denied",
        "ORGANIZATION_LIMITED_CREDENTIALS",
        "external_id can only be set with deployment-wide credentials",
      );
    }
    const v = new Violations();
    v.id("organization_id", "organization", input.organizationId);
    const name =
      input.name === undefined
        ? undefined
        : v.text("name", input.name, { min: 1, max: ORGANIZATION_NAME_MAX, trim: true });
    const externalId =
      input.externalId === undefined
        ? undefined
        : input.externalId === ""
          ? null
          : v.token("external_id", input.externalId, { min: 1, max: EXTERNAL_ID_MAX });
    v.throwIfAny();
    try {
      return await this.db.transaction(async (tx) => {
        const org = await orgs.findOrganization(tx, input.organizationId, { lock: true });
        if (!org) throw organizationNotFound(input.organizationId);
        const changes: Partial<Organization> = {};
        if (name !== undefined && name !== org.name) changes.name = name;
        if (externalId !== undefined && externalId !== org.externalId)
          changes.externalId = externalId;
        if (Object.keys(changes).length === 0) return org;
        changes.updatedAt = new Date();
        await orgs.updateOrganization(tx, org.id, changes);
        return { ...org, ...changes };
      }, deadline);
    } catch (err) {
      if (externalId && isDuplicateKey(err, "uq_organizations_external_id"))
        throw externalIdTaken(externalId);
      throw err;
    }
  }

  /**
   * Hides the organization at once; the reaper then removes its group
   * memberships, groups (with their events), memberships and the row itself
   * in bounded chunks, so this costs the same for any size of organization.
   */
  async delete(organizationId: string, deadline: CallDeadline | undefined): Promise<void> {
    const v = new Violations();
    v.id("organization_id", "organization", organizationId);
    v.throwIfAny();
    await this.db.transaction(async (tx) => {
      const org = await orgs.findOrganization(tx, organizationId, { lock: true });
      if (!org) throw organizationNotFound(organizationId);
      const at = new Date();
      await orgs.markOrganizationDeleted(tx, organizationId, at);
      await enqueueDeletion(tx, "organization", organizationId, at);
    }, deadline);
    this.reaper.wake();
  }
}
