import type { Logger } from "pino";
import type { Database } from "../store/database.js";
import { completeDeletion, pendingDeletions } from "../store/deletion-jobs.js";
import { isMissingParent, isRowReferenced } from "../store/errors.js";
import * as groupMembers from "../store/group-members.js";
import * as groups from "../store/groups.js";
import * as idempotency from "../store/idempotency.js";
import * as memberships from "../store/memberships.js";
import * as orgs from "../store/organizations.js";
import { appendEvents } from "../store/outbox.js";
import { groupEvent } from "./event-builders.js";
import { IDEMPOTENCY_WINDOW_MS } from "./groups.js";

export interface ReaperOptions {
  /** Rows deleted per transaction: bounds lock time and undo log size. */
  chunkSize: number;
  /** Groups deleted (with their events) per transaction. */
  groupChunkSize: number;
  /** How often it looks for work when nobody woke it. */
  intervalMs: number;
  /** A group's member count is folded once it has this many delta rows (see foldMemberCounts). */
  foldMinDeltaRows: number;
}

export const DEFAULT_REAPER_OPTIONS: ReaperOptions = {
  chunkSize: 5000,
  groupChunkSize: 200,
  intervalMs: 5000,
  foldMinDeltaRows: 4,
};

/**
 * Finishes deletions in the background, in bounded chunks: the group
 * memberships of deleted groups, and everything of deleted organizations
 * (group memberships, then groups with one `group.deleted` each, then
 * memberships, then the row). Each chunk is its own transaction, so any
 * replica can pick up where another stopped; row locks keep two replicas from
 * emitting the same event.
 */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts: ReaperOptions = DEFAULT_REAPER_OPTIONS,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.wake(), this.opts.intervalMs);
    this.timer.unref();
    this.wake();
  }

  /** Runs a pass soon (coalesced with one already running). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // wake() is called by the calls that enqueue deletions; the pass is not
    // theirs, and runs under no call's deadline.
    this.running = this.runOnce()
      .catch((err: unknown) => this.log.error({ err }, "reaper pass failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One full pass; resolves when no deletion is left (or on stop). */
  async runOnce(): Promise<void> {
    for (const groupId of await pendingDeletions(this.db.reader, "group", 100)) {
      if (this.stopped) return;
      await this.finishGroup(groupId);
    }
    for (const organizationId of await pendingDeletions(this.db.reader, "organization", 10)) {
      if (this.stopped) return;
      await this.finishOrganization(organizationId);
    }
    await this.foldMemberCounts();
    await this.db.transaction((tx) =>
      idempotency.purgeIdempotencyKeys(
        tx,
        new Date(Date.now() - IDEMPOTENCY_WINDOW_MS),
        this.opts.chunkSize,
      ),
    );
  }

  /**
   * Folds the member-count delta rows of groups that have gathered a few
   * (each change adds to one of up to 16 rows per group, so that changes to a
   * hot group do not queue on one row) into the group row, one group per
   * transaction: every read of a count sums those rows, so fewer is cheaper.
   */
  async foldMemberCounts(): Promise<void> {
    const ids = await groups.groupsWithCountDeltas(this.db.reader, this.opts.foldMinDeltaRows, 500);
    for (const id of ids) {
      if (this.stopped) return;
      await this.db.transaction((tx) => groups.foldMemberCount(tx, id));
    }
  }

  private async finishGroup(groupId: string): Promise<void> {
    while (
      !this.stopped &&
      (await this.db.transaction((tx) =>
        groupMembers.deleteMembershipsOfGroupsChunk(tx, [groupId], this.opts.chunkSize),
      )) > 0
    );
    if (this.stopped) return;
    await this.db.transaction(async (tx) => {
      // The organization reaper may have removed it already.
      await groups.deleteGroupRows(tx, [groupId]);
      await completeDeletion(tx, "group", groupId);
    });
  }

  private async finishOrganization(organizationId: string): Promise<void> {
    const { chunkSize, groupChunkSize } = this.opts;
    const repeat = async (chunk: () => Promise<number>) => {
      while (!this.stopped && (await chunk()) > 0);
    };
    // Links first, a page of groups at a time (links carry no organization id).
    for (let after = ""; !this.stopped;) {
      const page = await groups.groupIdsOfOrganization(
        this.db.reader,
        organizationId,
        after,
        groupChunkSize,
      );
      if (page.length === 0) break;
      await repeat(() =>
        this.db.transaction((tx) =>
          groupMembers.deleteMembershipsOfGroupsChunk(tx, page, chunkSize),
        ),
      );
      after = page[page.length - 1];
    }
    await repeat(() =>
      this.db.transaction(async (tx) => {
        const chunk = await groups.lockGroupsOfOrganization(tx, organizationId, groupChunkSize);
        const ids = chunk.map((g) => g.id);
        // Links added by calls that raced the deletion go with their group.
        await groupMembers.deleteMembershipsOfGroups(tx, ids);
        await groups.deleteGroupRows(tx, ids);
        for (const g of chunk) if (g.deletedAt !== null) await completeDeletion(tx, "group", g.id);
        await appendEvents(
          tx,
          chunk
            .filter((g) => g.deletedAt === null)
            .map(({ deletedAt: _d, ...g }) => groupEvent("group.deleted", g, "system")),
        );
        return chunk.length;
      }),
    );
    await repeat(() =>
      this.db.transaction((tx) =>
        memberships.deleteMembershipsOfOrganization(tx, organizationId, chunkSize),
      ),
    );
    if (this.stopped) return;
    try {
      await this.db.transaction(async (tx) => {
        await idempotency.deleteIdempotencyKeysOfOrganization(tx, organizationId);
        await orgs.deleteOrganizationRow(tx, organizationId);
        await completeDeletion(tx, "organization", organizationId);
      });
      this.log.info({ organizationId }, "organization deletion finished");
    } catch (err) {
      // A row was created under the organization while it was being emptied: the next pass removes it.
      if (!isMissingParent(err) && !isRowReferenced(err)) throw err;
      this.wake();
    }
  }
}
