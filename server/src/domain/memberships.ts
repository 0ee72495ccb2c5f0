import type { Database } from "../store/database.js";
import { isDuplicateKey, isMissingParent } from "../store/errors.js";
import * as groupMembers from "../store/group-members.js";
import * as groups from "../store/groups.js";
import * as memberships from "../store/memberships.js";
import * as orgs from "../store/organizations.js";
import { appendEvents } from "../store/outbox.js";
import {
  DomainError,
  invalidArgument,
  membershipNotFound,
  organizationNotFound,
} from "./errors.js";
import type { CallDeadline } from "./deadline.js";
import { memberEvent } from "./event-builders.js";
import { newId } from "./ids.js";
import { MEMBERSHIP_STATUSES, type Membership, type MembershipStatus, type Page } from "./model.js";
import { cursorOf, parsePage, type PageInput } from "./pagination.js";
import { Violations } from "./validation.js";

export const USER_ID_MAX = 128;

function statusOf(v: Violations, value: string): MembershipStatus | undefined {
  if ((MEMBERSHIP_STATUSES as readonly string[]).includes(value)) return value as MembershipStatus;
  v.add("status", "is not a known status");
  return undefined;
}

/**
 * The membership if the caller may see it: a caller limited to one
 * organization gets the same NOT_FOUND for another's membership as for a
 * missing one, so existence does not leak.
 */
export function visibleOrThrow<M extends Pick<Membership, "organizationId">>(
  m: M | undefined,
  membershipId: string,
  within: string | undefined,
): M {
  if (!m || (within !== undefined && m.organizationId !== within))
    throw membershipNotFound(membershipId);
  return m;
}

/** Organization memberships: one user's access to one organization. */
export class Memberships {
  constructor(private readonly db: Database) {}

  async create(
    input: { organizationId: string; userId: string; status: string | undefined },
    deadline: CallDeadline | undefined,
  ): Promise<Membership> {
    const v = new Violations();
    v.id("organization_id", "organization", input.organizationId);
    const userId = v.token("user_id", input.userId, { min: 1, max: USER_ID_MAX });
    const status = input.status === undefined ? "active" : statusOf(v, input.status);
    v.throwIfAny();
    const at = new Date();
    const membership: Membership = {
      id: newId("membership"),
      organizationId: input.organizationId,
      userId,
      status: status as MembershipStatus,
      createdAt: at,
      updatedAt: at,
    };
    try {
      await this.db.transaction(async (tx) => {
        if (!(await orgs.organizationExists(tx, input.organizationId))) {
          throw organizationNotFound(input.organizationId);
        }
        await memberships.insertMembership(tx, membership);
      }, deadline);
    } catch (err) {
      if (isDuplicateKey(err, "uq_memberships_org_user")) {
        throw new DomainError(
          "already_exists",
          "ORGANIZATION_MEMBERSHIP_ALREADY_EXISTS",
          `user ${JSON.stringify(userId)} already has a membership in ${input.organizationId}`,
          [],
          { organization_id: input.organizationId, user_id: userId },
        );
      }
      if (isMissingParent(err)) throw organizationNotFound(input.organizationId);
      throw err;
    }
    return membership;
  }

  /** `within`: the caller's organization, if it is limited to one (another's memberships are "not found"). */
  async get(membershipId: string, within?: string): Promise<Membership> {
    const v = new Violations();
    v.id("organization_membership_id", "membership", membershipId);
    v.throwIfAny();
    return visibleOrThrow(
      await memberships.findMembership(this.db.reader, membershipId),
      membershipId,
      within,
    );
  }

  async list(
    input: { organizationId: string; userId: string } & PageInput,
  ): Promise<Page<Membership>> {
    const v = new Violations();
    const organizationId = v.optionalId("organization_id", "organization", input.organizationId);
    const userId =
      input.userId === ""
        ? undefined
        : v.token("user_id", input.userId, { min: 1, max: USER_ID_MAX });
    if (input.organizationId === "" && input.userId === "") {
      v.add("organization_id", "organization_id or user_id is required");
    }
    const page = parsePage(v, input, "membership");
    v.throwIfAny();
    const found = await memberships.listMemberships(
      this.db.reader,
      { organizationId, userId },
      page,
    );
    if (organizationId && !found.live) throw organizationNotFound(organizationId);
    const cursor = cursorOf(page);
    if (cursor && !found.cursorOk) {
      throw invalidArgument([
        { field: cursor.field, description: "does not name a membership of this list" },
      ]);
    }
    return found.page;
  }

  async updateStatus(
    input: { membershipId: string; status: string | undefined; within?: string },
    deadline: CallDeadline | undefined,
  ): Promise<Membership> {
    const v = new Violations();
    v.id("organization_membership_id", "membership", input.membershipId);
    const status =
      input.status === undefined ? v.add("status", "is required") : statusOf(v, input.status);
    v.throwIfAny();
    return this.db.transaction(async (tx) => {
      const m = visibleOrThrow(
        await memberships.findMembership(tx, input.membershipId, { lock: true }),
        input.membershipId,
        input.within,
      );
      if (!status || m.status === status) return m;
      const at = new Date();
      await memberships.updateMembershipStatus(tx, m.id, status, at);
      return { ...m, status, updatedAt: at };
    }, deadline);
  }

  /**
   * Deletes the membership and its group memberships in one transaction, with
   * one `group.member_removed` (cause system) per live group it left.
   */
  async delete(
    membershipId: string,
    within: string | undefined,
    deadline: CallDeadline | undefined,
  ): Promise<void> {
    const v = new Violations();
    v.id("organization_membership_id", "membership", membershipId);
    v.throwIfAny();
    await this.db.transaction(async (tx) => {
      const m = visibleOrThrow(
        await memberships.findMembership(tx, membershipId, { lock: true }),
        membershipId,
        within,
      );
      // Lock the groups (in id order) before touching their links and counts.
      const locked = await groups.lockGroups(tx, await groupMembers.liveGroupIdsOfMember(tx, m.id));
      const left = new Set(await groupMembers.liveGroupIdsOfMember(tx, m.id));
      await groupMembers.deleteAllGroupMembershipsOf(tx, [m.id]);
      const events = [];
      for (const g of locked) {
        if (!left.has(g.id)) continue;
        await groups.adjustMemberCount(tx, g.id, -1);
        events.push(memberEvent("group.member_removed", g, m, "system"));
      }
      await memberships.deleteMembershipRow(tx, m.id);
      await appendEvents(tx, events);
    }, deadline);
  }
}
