import { createHash } from "node:crypto";
import type { EntityManager } from "typeorm";
import { Database } from "../store/database.js";
import { enqueueDeletion } from "../store/deletion-jobs.js";
import { ConcurrentChange, isDuplicateKey, isMissingParent } from "../store/errors.js";
import * as groupMembers from "../store/group-members.js";
import * as groups from "../store/groups.js";
import * as idempotency from "../store/idempotency.js";
import * as orgs from "../store/organizations.js";
import { appendEvents } from "../store/outbox.js";
import {
  DomainError,
  groupNotFound,
  invalidArgument,
  organizationNotFound,
  type FieldViolation,
} from "./errors.js";
import { Combiner, type Pending } from "./combiner.js";
import { earliestOf, type CallDeadline } from "./deadline.js";
import { groupEvent, memberEvent } from "./event-builders.js";
import { newId } from "./ids.js";
import { etagOf, type Group, type Membership, type Page } from "./model.js";
import { visibleOrThrow } from "./memberships.js";
import { cursorOf, parsePage, type PageInput } from "./pagination.js";
import type { Reaper } from "./reaper.js";
import { Violations } from "./validation.js";

export const GROUP_NAME_MAX = 256;
export const GROUP_DESCRIPTION_MAX = 150;
export const REQUEST_ID_MAX = 128;
export const BATCH_MAX = 1000;
export const CHECK_MAX = 100;
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

interface GroupRef {
  organizationId: string;
  groupId: string;
}

/** A change to a group's members, by a caller limited to `within` if it is set. */
interface MemberChange extends GroupRef {
  within?: string;
}

/** How changeMembers treats a call (a single add or remove, or a batch). */
interface ChangeOptions {
  /** Called when nothing needs to change (may throw the call's own error). */
  onNoChange?: (group: Group) => void;
  /**
   * A membership that does not exist is no change rather than NOT_FOUND
   * (RemoveGroupMember with allow_missing: it is not in the group, which is
   * all the caller asked, e.g. a clean-up after the membership was deleted).
   */
  missingAllowed?: boolean;
  /** The call's deadline (see Database.transaction). */
  deadline?: CallDeadline;
}

/** One AddGroupMember or RemoveGroupMember call. */
interface SingleChange extends MemberChange {
  membershipId: string;
  op: "add" | "remove";
  /** For a remove: a membership not in the group is no error. */
  allowMissing: boolean;
}

interface SingleChangeResult {
  group: Group;
  changed: boolean;
}

/** How many shared member-change transactions run at once, and how many calls one serves at most. */
const SINGLE_CHANGES_RUNNING = 2;
const SINGLE_CHANGES_BATCH = 64;

/**
 * How many shared read statements of one kind run at once, and how many calls
 * one answers at most. Two keep the database busy while one's answer is read;
 * measured at 64 in flight, one alone left the machine idle between batches.
 * Calls waiting are shared evenly between them (see Combiner.startUnits).
 */
const SHARED_READS_RUNNING = 2;
const SHARED_READS_BATCH = 16;

const etagMismatch = (group: Group) =>
  new DomainError("aborted", "ETAG_MISMATCH", "the group changed since the etag was read", [], {
    etag: etagOf(group),
  });

const reviveGroup = (json: string): Group => {
  const g = JSON.parse(json) as Group;
  return { ...g, createdAt: new Date(g.createdAt), updatedAt: new Date(g.updatedAt) };
};

/** Groups and their members: the rules of GroupsService. */
export class Groups {
  constructor(
    private readonly db: Database,
    private readonly reaper: Reaper,
    private readonly observe: {
      /** A shared transaction (see changeTogether) took `calls` calls and `seconds` to commit or fail. */
      onSharedChange?: (calls: number, seconds: number) => void;
      /** A shared read statement (see sharedReads) answered `calls` calls of `method` in `seconds`. */
      onSharedRead?: (method: string, calls: number, seconds: number) => void;
    } = {},
  ) {
    this.singleChanges = new Combiner((batch) => this.changeTogether(batch), {
      // Two transactions in turn keep the database busy while one commits; SQLite has one writer.
      // Not shared evenly: a transaction, a commit (measured: 16 calls in two of 8 were slower).
      maxRunning: db.dialect === "sqlite" ? 1 : SINGLE_CHANGES_RUNNING,
      maxBatch: SINGLE_CHANGES_BATCH,
      ...this.waitingBound(),
    });
    this.groupReads = this.sharedReads("GetGroup", groups.liveGroups);
    this.checks = this.sharedReads("CheckGroupMembership", groupMembers.membershipsInGroups);
    this.groupsOfMembers = this.sharedReads(
      "ListGroupsForOrganizationMembership",
      groupMembers.groupsOfMembers,
    );
  }

  /**
   * Concurrent calls' reads of one kind, answered together under load: one
   * statement (see selectParts) for many calls, so the database parses,
   * plans and answers one statement and the service makes one round trip
   * where it would make many. Calls arriving together go together (see
   * Combiner); others wait for one of the running statements to finish, then
   * go together in the next.
   */
  private sharedReads<I, O>(
    method: string,
    read: (db: EntityManager, inputs: I[]) => Promise<O[]>,
  ): Combiner<I, O> {
    return new Combiner(
      async (batch) => {
        const start = performance.now();
        try {
          const found = await read(
            this.db.reader,
            batch.map((p) => p.input),
          );
          batch.forEach((p, i) => p.resolve(found[i]));
        } finally {
          this.observe.onSharedRead?.(method, batch.length, (performance.now() - start) / 1000);
        }
      },
      {
        maxRunning: SHARED_READS_RUNNING,
        maxBatch: SHARED_READS_BATCH,
        shareEvenly: true,
        ...this.waitingBound(),
      },
    );
  }

  /** Calls waiting in a combiner are bounded like calls waiting for a pool connection. */
  private waitingBound() {
    const count = this.db.queueLimit;
    return count ? { maxWaiting: { count, overloaded: () => Database.unavailable() } } : {};
  }

  /** AddGroupMember and RemoveGroupMember calls, served together under load (see changeTogether). */
  private readonly singleChanges: Combiner<SingleChange, SingleChangeResult>;

  /** GetGroup, CheckGroupMembership and ListGroupsForOrganizationMembership reads (see sharedReads). */
  private readonly groupReads: Combiner<groups.GroupAsk, Group | undefined>;
  private readonly checks: Combiner<groupMembers.MembershipAsk, groupMembers.MembershipInGroups>;
  private readonly groupsOfMembers: Combiner<
    groupMembers.GroupsOfMemberAsk,
    groupMembers.GroupsOfMember
  >;

  async create(
    input: {
      organizationId: string;
      name: string;
      description: string;
      requestId: string;
    },
    deadline: CallDeadline | undefined,
  ): Promise<Group> {
    const v = new Violations();
    v.id("organization_id", "organization", input.organizationId);
    const name = v.text("name", input.name, { min: 1, max: GROUP_NAME_MAX, trim: true });
    const description = v.text("description", input.description, {
      min: 0,
      max: GROUP_DESCRIPTION_MAX,
      trim: false,
    });
    const requestId =
      input.requestId === ""
        ? undefined
        : v.token("request_id", input.requestId, { min: 1, max: REQUEST_ID_MAX });
    if (requestId !== undefined && !/^[\x21-\x7e]+$/.test(requestId)) {
      v.add("request_id", "must be printable ASCII without spaces");
    }
    v.throwIfAny();
    const requestHash = createHash("sha256")
      .update(JSON.stringify([name, description]))
      .digest("hex");

    const attempt = () =>
      this.db.transaction(async (tx) => {
        await this.requireOrganization(tx, input.organizationId);
        const at = new Date();
        const expiredBefore = new Date(at.getTime() - IDEMPOTENCY_WINDOW_MS);
        if (requestId !== undefined) {
          const key = await idempotency.findIdempotencyKey(
            tx,
            input.organizationId,
            requestId,
            expiredBefore,
          );
          if (key) {
            if (key.requestHash !== requestHash) {
              throw new DomainError(
                "invalid_argument",
                "IDEMPOTENCY_KEY_REUSED",
                "request_id was already used with different parameters",
                [
                  {
                    field: "request_id",
                    description: "was already used with different parameters",
                  },
                ],
              );
            }
            return reviveGroup(key.response);
          }
        }
        const group: Group = {
          id: newId("group"),
          organizationId: input.organizationId,
          name,
          description: description === "" ? null : description,
          memberCount: 0,
          version: 1,
          createdAt: at,
          updatedAt: at,
        };
        if (requestId !== undefined) {
          await idempotency.saveIdempotencyKey(
            tx,
            {
              organizationId: group.organizationId,
              requestId,
              requestHash,
              response: JSON.stringify(group),
              createdAt: at,
            },
            expiredBefore,
          );
        }
        await groups.insertGroup(tx, group, [groupEvent("group.created", group, "api")]);
        return group;
      }, deadline);
    try {
      return await attempt();
    } catch (err) {
      // Two first uses of one request_id raced: the loser now finds the winner's answer.
      if (isDuplicateKey(err, "PRIMARY") && requestId !== undefined) return attempt();
      if (isMissingParent(err)) throw organizationNotFound(input.organizationId);
      throw err;
    }
  }

  async get(ref: GroupRef, deadline: CallDeadline | undefined): Promise<Group> {
    this.validateRef(ref).throwIfAny();
    const group = await this.groupReads.submit(
      { organizationId: ref.organizationId, groupId: ref.groupId },
      deadline,
    );
    if (group) return group;
    throw await this.missingGroup(this.db.reader, ref);
  }

  async list(input: { organizationId: string } & PageInput): Promise<Page<Group>> {
    const v = new Violations();
    v.id("organization_id", "organization", input.organizationId);
    const page = parsePage(v, input, "group");
    v.throwIfAny();
    const found = await groups.listGroups(this.db.reader, input.organizationId, page);
    if (!found.live) throw organizationNotFound(input.organizationId);
    const cursor = cursorOf(page);
    if (cursor && !found.cursorOk) {
      throw invalidArgument([
        { field: cursor.field, description: "does not name a group of this organization" },
      ]);
    }
    return found.page;
  }

  async update(
    input: GroupRef & { name?: string; description?: string; etag: string },
    deadline: CallDeadline | undefined,
  ): Promise<Group> {
    const v = this.validateRef(input);
    const name =
      input.name === undefined
        ? undefined
        : v.text("name", input.name, { min: 1, max: GROUP_NAME_MAX, trim: true });
    const description =
      input.description === undefined
        ? undefined
        : v.text("description", input.description, {
            min: 0,
            max: GROUP_DESCRIPTION_MAX,
            trim: false,
          });
    v.throwIfAny();
    return this.db.transaction(async (tx) => {
      const group = await this.requireLiveGroup(tx, input, { lock: "update" });
      if (input.etag !== "" && input.etag !== etagOf(group)) throw etagMismatch(group);
      const previous: { name?: string; description?: string | null } = {};
      const next = { ...group };
      if (name !== undefined && name !== group.name) {
        previous.name = group.name;
        next.name = name;
      }
      const newDescription =
        description === undefined ? undefined : description === "" ? null : description;
      if (newDescription !== undefined && newDescription !== group.description) {
        previous.description = group.description;
        next.description = newDescription;
      }
      if (Object.keys(previous).length === 0) return group;
      next.version = group.version + 1;
      next.updatedAt = new Date();
      await groups.updateGroup(tx, group.id, {
        name: next.name,
        description: next.description,
        version: next.version,
        updatedAt: next.updatedAt,
      });
      await appendEvents(tx, [groupEvent("group.updated", next, "api", previous)]);
      return next;
    }, deadline);
  }

  /** Hides the group and emits group.deleted; the reaper removes its links in chunks. */
  async delete(
    input: GroupRef & { etag: string },
    deadline: CallDeadline | undefined,
  ): Promise<void> {
    this.validateRef(input).throwIfAny();
    await this.db.transaction(async (tx) => {
      const group = await this.requireLiveGroup(tx, input, { lock: "update" });
      if (input.etag !== "" && input.etag !== etagOf(group)) throw etagMismatch(group);
      const at = new Date();
      await groups.markGroupDeleted(tx, group.id, at);
      await enqueueDeletion(tx, "group", group.id, at);
      await appendEvents(tx, [groupEvent("group.deleted", group, "api")]);
    }, deadline);
    this.reaper.wake();
  }

  async addMember(
    input: MemberChange & { membershipId: string },
    deadline: CallDeadline | undefined,
  ): Promise<{ group: Group; added: boolean }> {
    const v = this.validateRef(input);
    v.id("organization_membership_id", "membership", input.membershipId);
    v.throwIfAny();
    const { group, changed } = await this.singleChanges.submit(
      { ...input, op: "add", allowMissing: true },
      deadline,
    );
    return { group, added: changed };
  }

  async removeMember(
    input: MemberChange & { membershipId: string; allowMissing: boolean },
    deadline: CallDeadline | undefined,
  ): Promise<{ group: Group; removed: boolean }> {
    const v = this.validateRef(input);
    v.id("organization_membership_id", "membership", input.membershipId);
    v.throwIfAny();
    const { group, changed } = await this.singleChanges.submit(
      { ...input, op: "remove" },
      deadline,
    );
    return { group, removed: changed };
  }

  async batchAdd(
    input: MemberChange & { membershipIds: string[] },
    deadline: CallDeadline | undefined,
  ) {
    const ids = this.validateBatch(input);
    const { group, changed } = await this.changeMembers(input, ids, "add", { deadline });
    const added = new Set(changed);
    return { group, results: ids.map((id) => ({ membershipId: id, changed: added.has(id) })) };
  }

  async batchRemove(
    input: MemberChange & { membershipIds: string[] },
    deadline: CallDeadline | undefined,
  ) {
    const ids = this.validateBatch(input);
    const { group, changed } = await this.changeMembers(input, ids, "remove", { deadline });
    const removed = new Set(changed);
    return { group, results: ids.map((id) => ({ membershipId: id, changed: removed.has(id) })) };
  }

  async listMembers(input: GroupRef & PageInput): Promise<Page<Membership>> {
    const v = this.validateRef(input);
    const page = parsePage(v, input, "membership");
    v.throwIfAny();
    const found = await groupMembers.listGroupMembers(
      this.db.reader,
      input.organizationId,
      input.groupId,
      page,
    );
    if (!found.live) throw await this.missingGroup(this.db.reader, input);
    const cursor = cursorOf(page);
    if (cursor && !found.cursorOk) {
      throw invalidArgument([
        { field: cursor.field, description: "does not name a membership of this organization" },
      ]);
    }
    return found.page;
  }

  async listForMembership(
    input: { membershipId: string; within?: string } & PageInput,
    deadline: CallDeadline | undefined,
  ): Promise<Page<Group>> {
    const v = new Violations();
    v.id("organization_membership_id", "membership", input.membershipId);
    const page = parsePage(v, input, "group");
    v.throwIfAny();
    const found = await this.groupsOfMembers.submit(
      { membershipId: input.membershipId, page },
      deadline,
    );
    visibleOrThrow(found.membership, input.membershipId, input.within);
    const cursor = cursorOf(page);
    if (cursor && !found.cursorInOrganization) {
      throw invalidArgument([
        { field: cursor.field, description: "does not name a group of this organization" },
      ]);
    }
    return found.page;
  }

  /** The subset of `groupIds` (in request order, without repeats) the membership belongs to. */
  async check(
    input: { membershipId: string; groupIds: string[]; within?: string },
    deadline: CallDeadline | undefined,
  ): Promise<string[]> {
    const v = new Violations();
    v.id("organization_membership_id", "membership", input.membershipId);
    if (input.groupIds.length === 0) v.add("group_ids", "at least one group id is required");
    if (input.groupIds.length > CHECK_MAX)
      v.add("group_ids", `at most ${CHECK_MAX} group ids are allowed`);
    input.groupIds.forEach((id, i) => v.id(`group_ids[${i}]`, "group", id));
    v.throwIfAny();
    const asked = [...new Set(input.groupIds)];
    const found = await this.checks.submit(
      { membershipId: input.membershipId, groupIds: asked },
      deadline,
    );
    visibleOrThrow(found, input.membershipId, input.within);
    return asked.filter((id) => found?.groupIds.has(id));
  }

  /**
   * Serves AddGroupMember and RemoveGroupMember calls that arrived together
   * in one transaction: each group locked once, every link, count and event
   * written in one round trip, one commit for all. Only the plain cases are
   * served here — the group and membership exist in one organization, and the
   * call changes a link or is a no-op add or allowed-missing remove; a second
   * call for the same link waits for this transaction. Those, and every call
   * of a transaction that failed (a link changed concurrently, a deadline
   * passed, a conflict past its retries), then run alone through
   * changeMembers, which gives each its own answer or error.
   */
  private async changeTogether(batch: Pending<SingleChange, SingleChangeResult>[]): Promise<void> {
    let served: Map<Pending<SingleChange, SingleChangeResult>, SingleChangeResult>;
    let alone: Pending<SingleChange, SingleChangeResult>[];
    const start = performance.now();
    try {
      ({ served, alone } = await this.db.transaction(
        (tx) => this.changeTogetherIn(tx, batch),
        earliestOf(batch.map((p) => p.deadline)),
      ));
    } catch {
      served = new Map();
      alone = batch;
    }
    this.observe.onSharedChange?.(batch.length, (performance.now() - start) / 1000);
    for (const [pending, result] of served) pending.resolve(result);
    await Promise.all(
      alone.map((p) => this.changeOne(p.input, p.deadline).then(p.resolve, p.reject)),
    );
  }

  private async changeTogetherIn(
    tx: EntityManager,
    batch: Pending<SingleChange, SingleChangeResult>[],
  ) {
    type Call = Pending<SingleChange, SingleChangeResult>;
    const groupKey = (c: SingleChange) => `${c.organizationId} ${c.groupId}`;
    const targets = new Map<string, groupMembers.MemberChangeTarget>();
    const links = new Set<string>();
    const together: Call[] = [];
    const alone: Call[] = [];
    for (const call of batch) {
      const c = call.input;
      const link = `${groupKey(c)} ${c.membershipId}`;
      if (links.has(link)) {
        alone.push(call);
        continue;
      }
      links.add(link);
      together.push(call);
      const target = targets.get(groupKey(c));
      if (target) target.membershipIds.push(c.membershipId);
      else
        targets.set(groupKey(c), {
          organizationId: c.organizationId,
          groupId: c.groupId,
          membershipIds: [c.membershipId],
        });
    }
    // The store locks the groups in id order, whatever the order here.
    const locked = await groupMembers.lockGroupsForMemberChange(tx, [...targets.values()], "share");
    const lockedByKey = new Map([...targets.keys()].map((key, i) => [key, locked[i]]));
    const counts = new Map<string, number>();
    const writes = new Map<string, groupMembers.LinkChange>();
    const served = new Map<Call, SingleChangeResult>();
    const at = new Date();
    for (const call of together) {
      const c = call.input;
      const { group, found } = lockedByKey.get(groupKey(c))!;
      const m = found.get(c.membershipId);
      if (!group || !m || m.membership.organizationId !== group.organizationId) {
        alone.push(call);
        continue;
      }
      const count = counts.get(group.id) ?? group.memberCount;
      if (m.linked === (c.op === "add")) {
        if (c.op === "remove" && !c.allowMissing) alone.push(call);
        else served.set(call, { group: { ...group, memberCount: count }, changed: false });
        continue;
      }
      const write = writes.get(`${group.id} ${c.op}`) ?? {
        group,
        op: c.op,
        membershipIds: [],
        events: [],
        at,
      };
      writes.set(`${group.id} ${c.op}`, write);
      write.membershipIds.push(c.membershipId);
      write.events.push(
        memberEvent(
          c.op === "add" ? "group.member_added" : "group.member_removed",
          group,
          m.membership,
          "api",
        ),
      );
      const next = count + (c.op === "add" ? 1 : -1);
      counts.set(group.id, next);
      served.set(call, { group: { ...group, memberCount: next }, changed: true });
    }
    await groupMembers.writeLinkChanges(tx, [...writes.values()]);
    return { served, alone };
  }

  /** One AddGroupMember or RemoveGroupMember call on its own. */
  private async changeOne(
    c: SingleChange,
    deadline: CallDeadline | undefined,
  ): Promise<SingleChangeResult> {
    const missingAllowed = c.op === "remove" && c.allowMissing;
    const { group, changed } = await this.changeMembers(c, [c.membershipId], c.op, {
      deadline,
      missingAllowed,
      onNoChange: (group) => {
        if (!missingAllowed && c.op === "remove") {
          throw new DomainError(
            "not_found",
            "GROUP_MEMBERSHIP_NOT_FOUND",
            `${c.membershipId} is not a member of ${group.id}`,
            [],
            { group_id: group.id, organization_membership_id: c.membershipId },
          );
        }
      },
    });
    return { group, changed: changed.length > 0 };
  }

  /**
   * The one path every add and remove takes: lock the group, check every
   * membership (all-or-nothing), change the links that need it, fix
   * member_count, and write one event per link changed — last, in the same
   * transaction.
   *
   * Changes to one group's members first run side by side under a share lock
   * (a hot group is not serialised). If two of them touched the same link,
   * the loser reruns once under the exclusive lock, which always succeeds.
   */
  private async changeMembers(
    ref: MemberChange,
    membershipIds: string[],
    op: "add" | "remove",
    opts: ChangeOptions,
  ): Promise<{ group: Group; changed: string[] }> {
    const once = (lock: "share" | "update") =>
      this.changeMembersOnce(ref, membershipIds, op, lock, opts);
    try {
      return await once("share");
    } catch (err) {
      if (!(err instanceof ConcurrentChange)) throw err;
      return once("update");
    }
  }

  private async changeMembersOnce(
    ref: MemberChange,
    membershipIds: string[],
    op: "add" | "remove",
    lock: "share" | "update",
    { onNoChange, missingAllowed = false, deadline }: ChangeOptions,
  ): Promise<{ group: Group; changed: string[] }> {
    try {
      return await this.db.transaction(async (tx) => {
        const [{ group, found }] = await groupMembers.lockGroupsForMemberChange(
          tx,
          [{ organizationId: ref.organizationId, groupId: ref.groupId, membershipIds }],
          lock,
        );
        if (!group) throw await this.missingGroup(tx, ref);
        const memberCount = group.memberCount;
        const single = membershipIds.length === 1;
        const field = (i: number) =>
          single ? "organization_membership_id" : `organization_membership_ids[${i}]`;
        const missing: FieldViolation[] = [];
        const missingIds: string[] = [];
        const foreign: FieldViolation[] = [];
        membershipIds.forEach((id, i) => {
          const m = found.get(id)?.membership;
          // For a caller limited to this organization, another organization's
          // membership is "not found" like a missing one: telling them apart
          // would reveal that it exists.
          if (!m || (m.organizationId !== ref.organizationId && ref.within !== undefined)) {
            missing.push({ field: field(i), description: `membership ${id} does not exist` });
            missingIds.push(id);
          } else if (m.organizationId !== ref.organizationId) {
            foreign.push({
              field: field(i),
              description: `membership ${id} belongs to another organization`,
            });
          }
        });
        if (missing.length > 0 && missingAllowed) return { group, changed: [] };
        if (missing.length > 0) {
          throw new DomainError(
            "not_found",
            "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
            `organization membership not found: ${missingIds.length === 1 ? missingIds[0] : `${missingIds.length} ids`}`,
            single ? [] : missing,
            single ? { id: membershipIds[0] } : {},
          );
        }
        if (foreign.length > 0) {
          throw new DomainError(
            "failed_precondition",
            "MEMBERSHIP_IN_OTHER_ORGANIZATION",
            `membership${foreign.length === 1 ? "" : "s"} of another organization cannot ${op === "add" ? "join" : "be in"} ${group.id}`,
            single ? [] : foreign,
          );
        }
        // Adds change the ids not linked yet, removes the ones linked.
        const changed = membershipIds.filter((id) => found.get(id)!.linked === (op === "remove"));
        if (changed.length === 0) {
          onNoChange?.(group);
          return { group: { ...group, memberCount }, changed };
        }
        const type = op === "add" ? "group.member_added" : "group.member_removed";
        await groupMembers.writeLinkChanges(tx, [
          {
            group,
            op,
            membershipIds: changed,
            events: changed.map((id) => memberEvent(type, group, found.get(id)!.membership, "api")),
            at: new Date(),
          },
        ]);
        const delta = op === "add" ? changed.length : -changed.length;
        return { group: { ...group, memberCount: memberCount + delta }, changed };
      }, deadline);
    } catch (err) {
      // A membership deleted between our read and the insert (the foreign key caught it).
      if (isMissingParent(err)) {
        throw new DomainError(
          "not_found",
          "ORGANIZATION_MEMBERSHIP_NOT_FOUND",
          "organization membership not found",
        );
      }
      throw err;
    }
  }

  private validateRef(ref: GroupRef): Violations {
    const v = new Violations();
    v.id("organization_id", "organization", ref.organizationId);
    v.id("group_id", "group", ref.groupId);
    return v;
  }

  private validateBatch(input: GroupRef & { membershipIds: string[] }): string[] {
    const v = this.validateRef(input);
    const ids = input.membershipIds;
    if (ids.length === 0) v.add("organization_membership_ids", "at least one id is required");
    if (ids.length > BATCH_MAX)
      v.add("organization_membership_ids", `at most ${BATCH_MAX} ids are allowed`);
    const seen = new Set<string>();
    ids.slice(0, BATCH_MAX + 1).forEach((id, i) => {
      v.id(`organization_membership_ids[${i}]`, "membership", id);
      if (seen.has(id)) v.add(`organization_membership_ids[${i}]`, "is repeated");
      seen.add(id);
    });
    v.throwIfAny();
    return ids;
  }

  private async requireOrganization(db: EntityManager, organizationId: string): Promise<void> {
    if (!(await orgs.organizationExists(db, organizationId)))
      throw organizationNotFound(organizationId);
  }

  /**
   * The live group of a live organization, or NOT_FOUND (a group of another
   * organization is "not found" too). One query checks both; only on a miss
   * do we ask which one is missing, to name it in the error.
   */
  private async requireLiveGroup(
    db: EntityManager,
    ref: GroupRef,
    opts: { lock?: "update" | "share" } = {},
  ): Promise<Group> {
    const group = await groups.findGroup(db, ref.organizationId, ref.groupId, opts);
    if (group) return group;
    throw await this.missingGroup(db, ref);
  }

  /** The NOT_FOUND for a group that is not live: its organization's, if that is gone too. */
  private async missingGroup(db: EntityManager, ref: GroupRef): Promise<DomainError> {
    await this.requireOrganization(db, ref.organizationId);
    return groupNotFound(ref.groupId);
  }
}
