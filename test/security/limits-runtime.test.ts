/**
 * Runtime limits (SPEC §6, issue 4 item 4), on every front door:
 * - the per-caller rate limit (token bucket): past the burst a caller gets
 *   RESOURCE_EXHAUSTED (RATE_LIMITED) with a google.rpc.RetryInfo, its call
 *   does nothing, other callers are unaffected, and after the advertised
 *   delay the caller is served again;
 * - deadlines: a unary call without a deadline gets DEADLINE_DEFAULT_MS, a
 *   longer client deadline is capped at DEADLINE_MAX_MS, and work that
 *   finishes after its deadline is never committed (the store refuses);
 *   work a call merely starts (the reaper) is not bound by the call's deadline.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { expectError } from "../support/assertions.js";
import { DOORS, startTestServer, type TestServer } from "../support/server.js";
import { sleep, until } from "../support/wait.js";

const rand = () => randomBytes(4).toString("hex");

async function count(t: TestServer, sql: string, params: unknown[]): Promise<number> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(sql, params);
  return Number(rows[0].n);
}

// ---------------------------------------------------------------------------
// Rate limit
// ---------------------------------------------------------------------------

describe("the per-caller rate limit (5 per second, burst 5)", () => {
  let t: TestServer;
  let org: string;

  beforeAll(async () => {
    t = await startTestServer({ RATE_LIMIT_PER_SECOND: "5", RATE_LIMIT_BURST: "5" });
    org = (await t.clients("grpc").orgs.createOrganization({ name: "Rate" })).organization!.id;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The RetryInfo delay of a RATE_LIMITED refusal, in ms (checked: exactly one, positive). */
  function retryDelayMs(err: ConnectError): number {
    const retry = err.findDetails(RetryInfoSchema);
    expect(retry).toHaveLength(1);
    const delay = retry[0].retryDelay!;
    return Number(delay.seconds) * 1000 + delay.nanos / 1e6;
  }

  it.each(DOORS)(
    "over %s: calls past the burst → RESOURCE_EXHAUSTED with RetryInfo and no effect; others unaffected; served again after the delay",
    async (door) => {
      const busy = await t.server.apiKeys.create({ name: `busy-${rand()}` });
      const other = await t.server.apiKeys.create({ name: `other-${rand()}` });
      const c = t.clients(door, { token: busy.secret });

      // Warm up (connection, verified-key cache), then let the bucket fill up again (5 tokens at 5/s).
      await c.orgs.getOrganization({ organizationId: org });
      await sleep(1_100);

      // The burst: five calls at once, all served.
      const started = performance.now();
      const burst = await Promise.all(
        Array.from({ length: 5 }, () => c.orgs.getOrganization({ organizationId: org })),
      );
      expect(burst.map((r) => r.organization?.id)).toEqual(Array(5).fill(org));

      // The calls right after it (the 6th and on, at once): refused but for what refilled meanwhile.
      const names = Array.from({ length: 10 }, (_, i) => `after burst ${i} ${rand()}`);
      const results = await Promise.allSettled(
        names.map((name) => c.groups.createGroup({ organizationId: org, name })),
      );
      const seconds = (performance.now() - started) / 1000;
      const refused = results.flatMap((r, i) =>
        r.status === "rejected" ? [{ i, err: r.reason }] : [],
      );
      expect(refused.length, "calls past the burst refused").toBeGreaterThan(0);
      // A token bucket never serves more than the burst plus what refilled (5/s) since it was full.
      expect(results.length - refused.length).toBeLessThanOrEqual(Math.floor(5 * seconds));
      for (const { err } of refused) {
        await expectError(Promise.reject(err), Code.ResourceExhausted, "RATE_LIMITED");
        const delayMs = retryDelayMs(err as ConnectError);
        expect(delayMs).toBeGreaterThan(0);
        // At 5 per second one token is never more than 200 ms away.
        expect(delayMs).toBeLessThanOrEqual(200);
      }
      // A refused call did nothing; a served one did its work.
      for (const [i, name] of names.entries()) {
        const stored = await count(t, "SELECT COUNT(*) AS n FROM org_groups WHERE name = ?", [
          name,
        ]);
        expect(stored, name).toBe(results[i].status === "fulfilled" ? 1 : 0);
      }

      // Another caller has a bucket of its own.
      const others = t.clients(door, { token: other.secret });
      expect((await others.orgs.getOrganization({ organizationId: org })).organization?.id).toBe(
        org,
      );

      // One call at a time until one is refused; after its advertised delay the caller is served again.
      for (let attempt = 0; ; attempt++) {
        expect(attempt, "a quick call is refused").toBeLessThan(50);
        const name = `retried ${rand()}`;
        const err = await c.groups.createGroup({ organizationId: org, name }).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (err === undefined) continue;
        await expectError(Promise.reject(err), Code.ResourceExhausted, "RATE_LIMITED");
        await sleep(retryDelayMs(err as ConnectError));
        const created = await c.groups.createGroup({ organizationId: org, name });
        expect(created.group?.name).toBe(name);
        break;
      }
    },
  );
});

// ---------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------

describe("deadlines (default 300 ms, cap 500 ms)", () => {
  let t: TestServer;
  let org: string;

  beforeAll(async () => {
    t = await startTestServer(
      { DEADLINE_DEFAULT_MS: "300", DEADLINE_MAX_MS: "500", RELAY_POLL_INTERVAL_MS: "50" },
      // Only a wake-up by the API can make the reaper run during these tests.
      { reaper: { intervalMs: 600_000 } },
    );
    org = (await t.clients("grpc").orgs.createOrganization({ name: "Deadlines" })).organization!.id;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A new member of the test organization: its membership id. */
  const newMembership = async () =>
    (
      await t.clients("grpc").orgs.createOrganizationMembership({
        organizationId: org,
        userId: `user_${rand()}`,
      })
    ).organizationMembership!.id;

  /** A connection of the test's own, holding row locks in an open transaction. */
  async function locker(): Promise<mysql.Connection> {
    return mysql.createConnection({ uri: t.db.url });
  }

  const updatedEvents = (groupId: string) =>
    count(t, "SELECT COUNT(*) AS n FROM events WHERE group_id = ? AND type = 'group.updated'", [
      groupId,
    ]);

  /** The call's outcome, or "still running" if it has not answered after 20 s (a hang, not a timing check). */
  async function outcome(call: Promise<unknown>): Promise<unknown> {
    return Promise.race([
      call.then(
        () => "succeeded",
        (err: unknown) => err,
      ),
      sleep(20_000).then(() => "still running after 20 s"),
    ]);
  }

  describe.each(DOORS)("over %s", (door) => {
    it.each([
      ["without a client deadline (the default applies)", undefined],
      ["with a 60 s client deadline (capped)", 60_000],
    ] as const)(
      "UpdateGroup blocked on a row lock, %s → DEADLINE_EXCEEDED, and its change is never committed",
      async (_what, timeoutMs) => {
        const admin = t.clients("grpc");
        const group = (await admin.groups.createGroup({ organizationId: org, name: "original" }))
          .group!;
        const c = t.clients(door);
        const lock = await locker();
        try {
          await lock.query("BEGIN");
          await lock.query("SELECT id FROM org_groups WHERE id = ? FOR UPDATE", [group.id]);

          const got = await outcome(
            c.groups.updateGroup(
              { organizationId: org, groupId: group.id, name: `changed ${rand()}` },
              timeoutMs === undefined ? {} : { timeoutMs },
            ),
          );
          // Answered while the lock was still held.
          expect(got).toBeInstanceOf(ConnectError);
          await expectError(
            Promise.reject(got as Error),
            Code.DeadlineExceeded,
            "DEADLINE_EXCEEDED",
          );
        } finally {
          await lock.query("ROLLBACK").catch(() => undefined);
          await lock.end();
        }

        // Once the row lock is free the blocked work runs on and ends; a locking read waits for it.
        const after = await locker();
        let version: number;
        try {
          await after.query("BEGIN");
          const [[row]] = await after.query<RowDataPacket[]>(
            "SELECT name, version FROM org_groups WHERE id = ? FOR UPDATE",
            [group.id],
          );
          expect(row).toMatchObject({ name: "original" });
          version = Number(row.version);
        } finally {
          await after.query("ROLLBACK").catch(() => undefined);
          await after.end();
        }
        expect(
          (await admin.groups.getGroup({ organizationId: org, groupId: group.id })).group,
        ).toMatchObject({ name: "original", etag: group.etag });
        expect(await updatedEvents(group.id)).toBe(0);

        // Unblocked, the same call (with the long client deadline) succeeds…
        const done = await c.groups.updateGroup(
          { organizationId: org, groupId: group.id, name: "changed in time" },
          { timeoutMs: 60_000 },
        );
        expect(done.group?.name).toBe("changed in time");
        // …and it is the only change ever committed: one version step, one group.updated event.
        const [[now]] = await t.db.sql.query<RowDataPacket[]>(
          "SELECT name, version FROM org_groups WHERE id = ?",
          [group.id],
        );
        expect(now).toMatchObject({ name: "changed in time", version: version + 1 });
        expect(await updatedEvents(group.id)).toBe(1);
      },
    );

    it("AddGroupMember blocked on the group's row lock → DEADLINE_EXCEEDED, and the member is never added", async () => {
      const admin = t.clients("grpc");
      const group = (await admin.groups.createGroup({ organizationId: org, name: "late add" }))
        .group!;
      const membershipId = await newMembership();
      const add = {
        organizationId: org,
        groupId: group.id,
        organizationMembershipId: membershipId,
      };
      const lock = await locker();
      try {
        await lock.query("BEGIN");
        await lock.query("SELECT id FROM org_groups WHERE id = ? FOR UPDATE", [group.id]);
        const got = await outcome(t.clients(door).groups.addGroupMember(add));
        expect(got).toBeInstanceOf(ConnectError);
        await expectError(Promise.reject(got as Error), Code.DeadlineExceeded, "DEADLINE_EXCEEDED");
      } finally {
        await lock.query("ROLLBACK").catch(() => undefined);
        await lock.end();
      }
      // The blocked add now reads, writes and ends; an exclusive lock on the group waits for it.
      const after = await locker();
      try {
        await after.query("BEGIN");
        await after.query("SELECT id FROM org_groups WHERE id = ? FOR UPDATE", [group.id]);
      } finally {
        await after.query("ROLLBACK").catch(() => undefined);
        await after.end();
      }
      const links = () =>
        count(t, "SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?", [group.id]);
      const addedEvents = () =>
        count(
          t,
          "SELECT COUNT(*) AS n FROM events WHERE group_id = ? AND type = 'group.member_added'",
          [group.id],
        );
      expect(await links()).toBe(0);
      expect(await addedEvents()).toBe(0);
      expect(
        (await admin.groups.getGroup({ organizationId: org, groupId: group.id })).group
          ?.memberCount,
      ).toBe(0n);

      // Unblocked, the same add succeeds, once: one link, one event, a count of 1.
      const done = await t.clients(door).groups.addGroupMember(add, { timeoutMs: 60_000 });
      expect(done.group?.memberCount).toBe(1n);
      expect(await links()).toBe(1);
      expect(await addedEvents()).toBe(1);
    });

    it("a COMMIT already sent when the deadline passes decides the answer: the caller gets its result", async () => {
      const admin = t.clients("grpc");
      const group = (await admin.groups.createGroup({ organizationId: org, name: "slow disk" }))
        .group!;
      // Another group: an update waits for the add's share lock on its group.
      const renamed = (await admin.groups.createGroup({ organizationId: org, name: "slow too" }))
        .group!;
      const membershipId = await newMembership();
      // A COMMIT that takes longer than the whole deadline, as one stuck behind a slow fsync
      // would: sent before the deadline, acknowledged after it.
      const runner = Object.getPrototypeOf(t.server.database.dataSource.createQueryRunner()) as {
        commitTransaction(): Promise<void>;
      };
      const commit = runner.commitTransaction;
      runner.commitTransaction = async function (this: unknown) {
        await sleep(450);
        return commit.call(this);
      };
      let added: unknown;
      let updated: unknown;
      try {
        [added, updated] = await Promise.all([
          outcome(
            t.clients(door).groups.addGroupMember({
              organizationId: org,
              groupId: group.id,
              organizationMembershipId: membershipId,
            }),
          ),
          outcome(
            t.clients(door).groups.updateGroup({
              organizationId: org,
              groupId: renamed.id,
              name: "renamed late",
            }),
          ),
        ]);
      } finally {
        runner.commitTransaction = commit;
      }
      // Both changes were committed, so neither caller may be told they failed.
      expect(added).toBe("succeeded");
      expect(updated).toBe("succeeded");
      expect(
        await count(t, "SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?", [
          group.id,
        ]),
      ).toBe(1);
      expect(await updatedEvents(renamed.id)).toBe(1);
    });

    it("a deletion a call accepted is carried out after the call's deadline passed (the reaper is not bound by it)", async () => {
      const admin = t.clients("grpc");
      const group = (await admin.groups.createGroup({ organizationId: org, name: "doomed" }))
        .group!;
      await admin.groups.addGroupMember({
        organizationId: org,
        groupId: group.id,
        organizationMembershipId: await newMembership(),
      });
      const lock = await locker();
      try {
        // Hold the group's member links, so the reaper's work outlasts the deleting call's deadline.
        await lock.query("BEGIN");
        await lock.query("SELECT * FROM group_memberships WHERE group_id = ? FOR UPDATE", [
          group.id,
        ]);
        await t.clients(door).groups.deleteGroup({ organizationId: org, groupId: group.id });
        await sleep(800);
      } finally {
        await lock.query("ROLLBACK").catch(() => undefined);
        await lock.end();
      }
      await until(
        "the reaper removes the deleted group's rows",
        async () =>
          (await count(t, "SELECT COUNT(*) AS n FROM org_groups WHERE id = ?", [group.id])) === 0 &&
          (await count(t, "SELECT COUNT(*) AS n FROM group_memberships WHERE group_id = ?", [
            group.id,
          ])) === 0,
        5_000,
      );
    });
  });
});
