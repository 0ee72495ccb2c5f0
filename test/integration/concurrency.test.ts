import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { Order } from "../../clients/src/gen/groups/v1/common_pb.js";
import { startTestServer, type Clients, type Door, type TestServer } from "../support/server.js";
import { pool } from "../support/assertions.js";
import { MEMBER_COUNT } from "../../server/src/store/pagination.js";
import { TEST_DATABASE } from "../support/database.js";

/**
 * Many clients racing on the same rows (SPEC §3): never INTERNAL, no duplicate
 * group memberships, member_count exact, and the outbox agrees with the
 * final state (one event per change actually made).
 */

let t: TestServer;

type Outcome<T> =
  { ok: true; value: T } | { ok: false; code: Code; reason: string; message: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    const err = ConnectError.from(e);
    return {
      ok: false,
      code: err.code,
      reason: err.findDetails(ErrorInfoSchema)[0]?.reason ?? "",
      message: err.message,
    };
  }
}

const describeFailure = (o: Outcome<unknown>) =>
  o.ok ? "OK" : `${Code[o.code]} ${o.reason}: ${o.message}`;

async function scalar(sql: string, params: unknown[]): Promise<number> {
  const [rows] = await t.db.sql.query(sql, params);
  return Number(Object.values((rows as Record<string, unknown>[])[0])[0]);
}

const linkRows = (groupId: string, membershipId?: string) =>
  membershipId === undefined
    ? scalar("SELECT COUNT(*) FROM group_memberships WHERE group_id = ?", [groupId])
    : scalar(
        "SELECT COUNT(*) FROM group_memberships WHERE group_id = ? AND organization_membership_id = ?",
        [groupId, membershipId],
      );
const storedMemberCount = (groupId: string) =>
  scalar(`SELECT ${MEMBER_COUNT} FROM org_groups g WHERE g.id = ?`, [groupId]);
const eventCount = (groupId: string, type: string) =>
  scalar("SELECT COUNT(*) FROM events WHERE group_id = ? AND type = ?", [groupId, type]);

/** member_count (stored and as read through the API) equals the real rows; events agree. */
async function checkGroupConsistent(c: Clients, organizationId: string, groupId: string) {
  const rows = await linkRows(groupId);
  expect(await storedMemberCount(groupId), "org_groups.member_count").toBe(rows);
  const g = (await c.groups.getGroup({ organizationId, groupId })).group!;
  expect(g.memberCount, "GetGroup member_count").toBe(BigInt(rows));
  const added = await eventCount(groupId, "group.member_added");
  const removed = await eventCount(groupId, "group.member_removed");
  expect(added - removed, "member_added − member_removed events").toBe(rows);
  return { rows, added, removed };
}

/**
 * The group-commit metrics: AddGroupMember/RemoveGroupMember calls, the shared
 * transactions that took them, and those transactions' timings.
 */
async function sharedTransactions() {
  const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    calls: value("groups_member_changes_per_transaction_sum"),
    transactions: value("groups_member_changes_per_transaction_count"),
    timed: value("groups_member_change_transaction_seconds_count"),
    seconds: value("groups_member_change_transaction_seconds_sum"),
  };
}

/** `count` new memberships of `org` (users `<prefix>0`, `<prefix>1`, …), created `parallel` at a time. */
function createMemberships(
  c: Clients,
  org: string,
  count: number,
  prefix: string,
  parallel: number,
) {
  return pool(Array.from({ length: count }), parallel, async (_, i) => {
    const r = await c.orgs.createOrganizationMembership({
      organizationId: org,
      userId: `${prefix}${i}`,
    });
    return r.organizationMembership!.id;
  });
}

/** A new organization with `count` memberships, one empty group in it, and 32 clients to race on it. */
async function hotGroup(name: string, count: number, prefix: string) {
  const c = t.clients("grpc");
  const org = (await c.orgs.createOrganization({ name })).organization!.id;
  const members = await createMemberships(c, org, count, prefix, 16);
  const g = (await c.groups.createGroup({ organizationId: org, name })).group!.id;
  return { c, org, members, g, clients: clientPool(32) };
}

/** 32 clients, half on the grpc-js door and half on connect-node. */
function clientPool(size = 32): Clients[] {
  const doors: Door[] = ["grpc", "connect"];
  return Array.from({ length: size }, (_, i) => t.clients(doors[i % 2]));
}

beforeAll(async () => {
  // Fold member counts as soon as a group has one delta row, so folding meets the writes.
  t = await startTestServer({}, { reaper: { foldMinDeltaRows: 1 } });
});

afterAll(async () => {
  await t?.close();
});

describe("concurrent writers", () => {
  it("add and remove of the same (group, membership) pair from 32 clients", async () => {
    const c = t.clients("grpc");
    const org = (await c.orgs.createOrganization({ name: "Same pair" })).organization!.id;
    const m = (await c.orgs.createOrganizationMembership({ organizationId: org, userId: "u" }))
      .organizationMembership!.id;
    const g = (await c.groups.createGroup({ organizationId: org, name: "Hot" })).group!.id;
    const ref = { organizationId: org, groupId: g, organizationMembershipId: m };

    const ROUNDS = 8;
    const clients = clientPool(32);
    let addedTrue = 0;
    let removedTrue = 0;
    const unexpected: string[] = [];

    await Promise.all(
      clients.map(async (client, w) => {
        for (let r = 0; r < ROUNDS; r++) {
          const op = (w + r) % 4;
          if (op === 0 || op === 3) {
            const o = await outcome(client.groups.addGroupMember(ref));
            if (!o.ok) unexpected.push(`add: ${describeFailure(o)}`);
            else {
              if (o.value.added) addedTrue++;
              if (o.value.group!.memberCount !== 1n)
                unexpected.push(`add answered member_count ${o.value.group!.memberCount}`);
            }
          } else {
            const allowMissing = op === 1;
            const o = await outcome(client.groups.removeGroupMember({ ...ref, allowMissing }));
            if (o.ok) {
              if (o.value.removed) removedTrue++;
              if (o.value.group!.memberCount !== 0n)
                unexpected.push(`remove answered member_count ${o.value.group!.memberCount}`);
            } else if (
              allowMissing ||
              o.code !== Code.NotFound ||
              o.reason !== "GROUP_MEMBERSHIP_NOT_FOUND"
            ) {
              unexpected.push(`remove(allow_missing=${allowMissing}): ${describeFailure(o)}`);
            }
          }
        }
      }),
    );

    expect(unexpected).toEqual([]);
    expect(addedTrue, "some adds changed something").toBeGreaterThan(0);
    const rows = await linkRows(g, m);
    expect(rows).toBeLessThanOrEqual(1);
    const { added, removed } = await checkGroupConsistent(c, org, g);
    // One event per change actually made, and none for the no-ops.
    expect(added).toBe(addedTrue);
    expect(removed).toBe(removedTrue);
    expect(addedTrue - removedTrue).toBe(rows);
    // The membership and the group themselves are unaffected.
    await c.orgs.getOrganizationMembership({ organizationMembershipId: m });
    const listed = await c.groups.listGroupMembers({ organizationId: org, groupId: g });
    expect(listed.organizationMemberships.map((x) => x.id)).toEqual(rows === 1 ? [m] : []);
  });

  it("adds and removes of many memberships on one hot group keep member_count exact", async () => {
    const { c, org, members, g, clients } = await hotGroup("Hot group", 240, "u");
    const unexpected: string[] = [];

    // Every membership added twice by single adds, plus overlapping batches of 40.
    type Job = { kind: "one"; id: string } | { kind: "batch"; ids: string[] };
    const jobs: Job[] = [
      ...members.map((id): Job => ({ kind: "one", id })),
      ...[...members].reverse().map((id): Job => ({ kind: "one", id })),
    ];
    // Interleave six overlapping batches of 40 among the singles.
    for (let i = 5; i >= 0; i--) {
      jobs.splice(i * 80, 0, { kind: "batch", ids: members.slice(i * 40, i * 40 + 40) });
    }
    let addedTrue = 0;
    await pool(jobs, 32, async (job, i) => {
      const client = clients[i % clients.length];
      if (job.kind === "one") {
        const o = await outcome(
          client.groups.addGroupMember({
            organizationId: org,
            groupId: g,
            organizationMembershipId: job.id,
          }),
        );
        if (o.ok) addedTrue += o.value.added ? 1 : 0;
        else unexpected.push(`add: ${describeFailure(o)}`);
      } else {
        const o = await outcome(
          client.groups.batchAddGroupMembers({
            organizationId: org,
            groupId: g,
            organizationMembershipIds: job.ids,
          }),
        );
        if (o.ok) {
          expect(o.value.results.map((r) => r.organizationMembershipId)).toEqual(job.ids);
          addedTrue += o.value.results.filter((r) => r.added).length;
        } else unexpected.push(`batch add: ${describeFailure(o)}`);
      }
    });
    expect(unexpected).toEqual([]);
    expect(addedTrue, "each membership added exactly once").toBe(members.length);
    let state = await checkGroupConsistent(c, org, g);
    expect(state.rows).toBe(members.length);
    expect(state.added).toBe(members.length);

    // Now remove 100 of them, each twice (allow_missing), from all clients at once.
    const gone = members.filter((_, i) => i % 12 < 5);
    let removedTrue = 0;
    await pool([...gone, ...gone], 32, async (id, i) => {
      const o = await outcome(
        clients[i % clients.length].groups.removeGroupMember({
          organizationId: org,
          groupId: g,
          organizationMembershipId: id,
          allowMissing: true,
        }),
      );
      if (o.ok) removedTrue += o.value.removed ? 1 : 0;
      else unexpected.push(`remove: ${describeFailure(o)}`);
    });
    expect(unexpected).toEqual([]);
    expect(removedTrue).toBe(gone.length);
    state = await checkGroupConsistent(c, org, g);
    expect(state.rows).toBe(members.length - gone.length);
    expect(state.removed).toBe(gone.length);
  });

  it("folding member counts beside adds and removes on a hot group keeps member_count exact", async () => {
    const { c, org, members, g, clients } = await hotGroup("Folded", 120, "f");
    const unexpected: string[] = [];
    let writing = true;
    let folds = 0;
    const folding = (async () => {
      while (writing) {
        await t.server.reaper.foldMemberCounts();
        folds++;
        // The embedded SQLite store answers synchronously: let the calls run between folds.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    // Add all, then remove every third, each from whichever client comes next.
    const gone = members.filter((_, i) => i % 3 === 0);
    const jobs = [
      ...members.map((id) => ({ op: "add" as const, id })),
      ...gone.map((id) => ({ op: "remove" as const, id })),
    ];
    await pool(jobs, 32, async ({ op, id }, i) => {
      const ref = { organizationId: org, groupId: g, organizationMembershipId: id };
      const client = clients[i % clients.length].groups;
      const o = await outcome<unknown>(
        op === "add" ? client.addGroupMember(ref) : client.removeGroupMember(ref),
      );
      if (!o.ok) unexpected.push(`${op}: ${describeFailure(o)}`);
    });
    writing = false;
    await folding;
    expect(unexpected).toEqual([]);
    expect(folds).toBeGreaterThan(0);
    await checkGroupConsistent(c, org, g);

    // Once folded, the whole count is in the group row.
    await t.server.reaper.foldMemberCounts();
    expect(await scalar("SELECT COUNT(*) FROM group_member_counts WHERE group_id = ?", [g])).toBe(
      0,
    );
    expect(await scalar("SELECT member_count FROM org_groups WHERE id = ?", [g])).toBe(
      members.length - gone.length,
    );
    await checkGroupConsistent(c, org, g);
  });

  it("single adds and removes arriving together share transactions, and each gets the answer it would get alone", async () => {
    const c = t.clients("grpc");
    const org = (await c.orgs.createOrganization({ name: "Together" })).organization!.id;
    const other = (await c.orgs.createOrganization({ name: "Elsewhere" })).organization!.id;
    const members = await createMemberships(c, org, 60, "t", 16);
    const foreign = (
      await c.orgs.createOrganizationMembership({ organizationId: other, userId: "f" })
    ).organizationMembership!.id;
    const groups = await pool(Array.from({ length: 4 }), 4, async (_, i) => {
      return (await c.groups.createGroup({ organizationId: org, name: `T${i}` })).group!.id;
    });
    // Members 0–9 are already in every group.
    for (const g of groups) {
      await c.groups.batchAddGroupMembers({
        organizationId: org,
        groupId: g,
        organizationMembershipIds: members.slice(0, 10),
      });
    }
    const batchesBefore = await sharedTransactions();

    type Expect = "added" | "noop" | "removed" | string;
    const calls: { run: (x: Clients) => Promise<unknown>; expect: Expect; pair?: string }[] = [];
    const add = (g: string, m: string, expect: Expect, organizationId = org) =>
      calls.push({
        run: (x) =>
          x.groups.addGroupMember({ organizationId, groupId: g, organizationMembershipId: m }),
        expect,
        pair: `${g} ${m}`,
      });
    const remove = (g: string, m: string, allowMissing: boolean, expect: Expect) =>
      calls.push({
        run: (x) =>
          x.groups.removeGroupMember({
            organizationId: org,
            groupId: g,
            organizationMembershipId: m,
            allowMissing,
          }),
        expect,
      });
    groups.forEach((g, gi) => {
      for (let i = 10; i < 20; i++) add(g, members[i + gi * 10], "added"); // new links
      add(g, members[gi], "noop"); // already a member
      remove(g, members[9 - gi], false, "removed"); // a member leaves
      remove(g, members[59], true, "noop"); // not a member, allowed
      remove(g, members[58], false, "NOT_FOUND GROUP_MEMBERSHIP_NOT_FOUND");
      add(g, foreign, "FAILED_PRECONDITION MEMBERSHIP_IN_OTHER_ORGANIZATION");
      add(g, "om_01JZZZZZZZZZZZZZZZZZZZZZZZ", "NOT_FOUND ORGANIZATION_MEMBERSHIP_NOT_FOUND");
    });
    add("group_01JZZZZZZZZZZZZZZZZZZZZZZZ", members[0], "NOT_FOUND GROUP_NOT_FOUND");
    add(groups[0], members[0], "NOT_FOUND GROUP_NOT_FOUND", other); // a group of another organization
    // Eight adds of one new link: exactly one adds it.
    for (let i = 0; i < 8; i++) add(groups[3], members[50], "added-once");

    const clients = clientPool(32);
    const outcomes = await Promise.all(calls.map((call, i) => outcome(call.run(clients[i % 32]))));
    const codeName: Partial<Record<Code, string>> = {
      [Code.NotFound]: "NOT_FOUND",
      [Code.FailedPrecondition]: "FAILED_PRECONDITION",
    };
    const answer = (o: Outcome<unknown>): string => {
      if (!o.ok) return `${codeName[o.code] ?? Code[o.code]} ${o.reason}`;
      const v = o.value as { added?: boolean; removed?: boolean };
      if (v.added !== undefined) return v.added ? "added" : "noop";
      return v.removed ? "removed" : "noop";
    };
    const got = outcomes.map(answer);
    const once = got.filter((_, i) => calls[i].expect === "added-once");
    expect(once.filter((a) => a === "added")).toHaveLength(1);
    expect(once.filter((a) => a !== "added").every((a) => a === "noop")).toBe(true);
    expect(got.filter((_, i) => calls[i].expect !== "added-once")).toEqual(
      calls.filter((call) => call.expect !== "added-once").map((call) => call.expect),
    );

    for (const g of groups) await checkGroupConsistent(c, org, g);
    expect(await linkRows(groups[3], members[50])).toBe(1);
    expect(await eventCount(groups[0], "group.member_removed")).toBe(1);
    // Every call went through the group commit; on MariaDB, under this load, calls shared
    // transactions. (The embedded SQLite store answers synchronously: each call's transaction
    // is over before the next call arrives.)
    const batchesAfter = await sharedTransactions();
    expect(batchesAfter.calls - batchesBefore.calls).toBe(calls.length);
    // Every shared transaction was timed, and the timings add up to real time.
    const transactions = batchesAfter.transactions - batchesBefore.transactions;
    expect(batchesAfter.timed - batchesBefore.timed).toBe(transactions);
    expect(batchesAfter.seconds - batchesBefore.seconds).toBeGreaterThan(0);
    if (TEST_DATABASE === "mysql") {
      expect(batchesAfter.transactions - batchesBefore.transactions).toBeLessThan(calls.length / 2);
    }
  });

  it("CreateGroup with the same request_id from many clients creates one group", async () => {
    const c = t.clients("grpc");
    const doors: Door[] = ["grpc", "connect", "grpc-web"];
    for (let round = 0; round < 5; round++) {
      const org = (await c.orgs.createOrganization({ name: `Idempotent ${round}` })).organization!
        .id;
      const clients = Array.from({ length: 24 }, (_, i) => t.clients(doors[i % 3]));
      const req = {
        organizationId: org,
        name: "Payroll",
        description: "once",
        requestId: `req-${round}-same`,
      };
      const outcomes = await Promise.all(clients.map((x) => outcome(x.groups.createGroup(req))));
      const failures = outcomes.filter((o) => !o.ok).map(describeFailure);
      expect(failures).toEqual([]);
      const groups = outcomes.map((o) => (o.ok ? o.value.group! : undefined)!);
      const ids = new Set(groups.map((g) => g.id));
      expect(ids.size, "every caller got the same group").toBe(1);
      const [id] = ids;
      for (const g of groups) {
        expect(g.name).toBe("Payroll");
        expect(g.description).toBe("once");
        expect(g.etag).toBe(groups[0].etag);
        expect(g.createdAt).toEqual(groups[0].createdAt);
      }
      expect(await scalar("SELECT COUNT(*) FROM org_groups WHERE organization_id = ?", [org])).toBe(
        1,
      );
      expect(
        await scalar(
          "SELECT COUNT(*) FROM events WHERE organization_id = ? AND type = 'group.created'",
          [org],
        ),
      ).toBe(1);
      expect(await scalar("SELECT COUNT(*) FROM events WHERE organization_id = ?", [org])).toBe(1);
      expect(
        await scalar("SELECT COUNT(*) FROM idempotency_keys WHERE organization_id = ?", [org]),
      ).toBe(1);
      const listed = await c.groups.listGroups({ organizationId: org });
      expect(listed.groups.map((g) => g.id)).toEqual([id]);
    }
  });

  it("DeleteOrganizationMembership racing AddGroupMember leaves a consistent state", async () => {
    const c = t.clients("grpc");
    const org = (await c.orgs.createOrganization({ name: "Delete race" })).organization!.id;
    const K = 16;
    const members = await createMemberships(c, org, K, "d", 8);
    // A membership that stays, so the hot group is not trivially empty.
    const keeper = (await c.orgs.createOrganizationMembership({ organizationId: org, userId: "k" }))
      .organizationMembership!.id;
    const hot = (await c.groups.createGroup({ organizationId: org, name: "Hot" })).group!.id;
    await c.groups.addGroupMember({
      organizationId: org,
      groupId: hot,
      organizationMembershipId: keeper,
    });
    const own = await pool(members, 8, async (_, i) => {
      const r = await c.groups.createGroup({ organizationId: org, name: `own ${i}` });
      return r.group!.id;
    });
    // Half of them are already in their own group before the race (the delete must cascade).
    for (let i = 0; i < K; i += 2) {
      await c.groups.addGroupMember({
        organizationId: org,
        groupId: own[i],
        organizationMembershipId: members[i],
      });
    }

    const clients = clientPool(32);
    const unexpected: string[] = [];
    const addedTrue = new Map<string, number>(); // group id → successful adds with added = true
    const deletesOk = new Map<string, number>();
    let n = 0;
    const next = () => clients[n++ % clients.length];

    const add = async (groupId: string, membershipId: string) => {
      const o = await outcome(
        next().groups.addGroupMember({
          organizationId: org,
          groupId,
          organizationMembershipId: membershipId,
        }),
      );
      if (o.ok) {
        if (o.value.added) addedTrue.set(groupId, (addedTrue.get(groupId) ?? 0) + 1);
      } else if (o.code !== Code.NotFound || o.reason !== "ORGANIZATION_MEMBERSHIP_NOT_FOUND") {
        unexpected.push(`add ${membershipId} to ${groupId}: ${describeFailure(o)}`);
      }
    };
    const del = async (membershipId: string) => {
      const o = await outcome(
        next().orgs.deleteOrganizationMembership({ organizationMembershipId: membershipId }),
      );
      if (o.ok) deletesOk.set(membershipId, (deletesOk.get(membershipId) ?? 0) + 1);
      else if (o.code !== Code.NotFound || o.reason !== "ORGANIZATION_MEMBERSHIP_NOT_FOUND") {
        unexpected.push(`delete ${membershipId}: ${describeFailure(o)}`);
      }
    };

    await Promise.all(
      members.flatMap((m, i) => {
        const adds = [
          add(hot, m),
          add(own[i], m),
          add(hot, m),
          add(own[i], m),
          add(hot, m),
          add(own[i], m),
        ];
        // Vary who starts first: the delete before, among, or after the adds.
        const deletes =
          i % 3 === 0
            ? [del(m), del(m)]
            : [
                Promise.resolve().then(() => del(m)),
                new Promise<void>((r) => setImmediate(r)).then(() => del(m)),
              ];
        return i % 2 === 0 ? [...deletes, ...adds] : [...adds, ...deletes];
      }),
    );

    expect(unexpected).toEqual([]);
    for (const m of members) expect(deletesOk.get(m), `exactly one delete of ${m} wins`).toBe(1);

    // Every raced membership is gone, with no group membership left behind.
    const placeholders = members.map(() => "?").join(",");
    expect(
      await scalar(
        `SELECT COUNT(*) FROM organization_memberships WHERE id IN (${placeholders})`,
        members,
      ),
    ).toBe(0);
    expect(
      await scalar(
        `SELECT COUNT(*) FROM group_memberships WHERE organization_membership_id IN (${placeholders})`,
        members,
      ),
    ).toBe(0);
    expect(
      await scalar(
        `SELECT COUNT(*) FROM group_memberships gm
           LEFT JOIN organization_memberships m ON m.id = gm.organization_membership_id
          WHERE m.id IS NULL`,
        [],
      ),
    ).toBe(0);

    for (const m of members) {
      const o = await outcome(c.orgs.getOrganizationMembership({ organizationMembershipId: m }));
      expect(o.ok ? "OK" : Code[o.code]).toBe("NotFound");
    }
    const hotState = await checkGroupConsistent(c, org, hot);
    expect(hotState.rows).toBe(1);
    const hotMembers = await c.groups.listGroupMembers({ organizationId: org, groupId: hot });
    expect(hotMembers.organizationMemberships.map((x) => x.id)).toEqual([keeper]);
    // Every successful add recorded exactly one member_added; every one was undone by the cascade.
    expect(hotState.added).toBe(1 + (addedTrue.get(hot) ?? 0));
    for (let i = 0; i < K; i++) {
      const state = await checkGroupConsistent(c, org, own[i]);
      expect(state.rows).toBe(0);
      expect(state.added).toBe((i % 2 === 0 ? 1 : 0) + (addedTrue.get(own[i]) ?? 0));
    }
  });
});

describe("concurrent readers", () => {
  /** The shared-read metrics: calls of `method`, the statements that answered them, and their timings. */
  async function sharedReads(method: string) {
    const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
    const value = (name: string) =>
      Number(
        new RegExp(`^${name}\\{method="${method}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN,
      );
    return {
      calls: value("groups_reads_per_statement_sum") || 0,
      statements: value("groups_reads_per_statement_count") || 0,
      timed: value("groups_read_statement_seconds_count") || 0,
      seconds: value("groups_read_statement_seconds_sum") || 0,
    };
  }

  it("group reads, checks and group lists arriving together share statements, and each gets the answer it would get alone", async () => {
    const c = t.clients("grpc");
    const org = (await c.orgs.createOrganization({ name: "Readers" })).organization!.id;
    const other = (await c.orgs.createOrganization({ name: "Readers elsewhere" })).organization!.id;
    const members = await createMemberships(c, org, 24, "r", 16);
    const groups = await pool(Array.from({ length: 12 }), 4, async (_, i) => {
      return (await c.groups.createGroup({ organizationId: org, name: `R${i}` })).group!.id;
    });
    const foreignGroup = (await c.groups.createGroup({ organizationId: other, name: "X" })).group!
      .id;
    // Membership i is in group g when (i + g) % 3 === 0, or in every group when i % 8 === 0.
    const inGroup = (i: number, g: number) => (i + g) % 3 === 0 || i % 8 === 0;
    for (const [g, groupId] of groups.entries()) {
      await c.groups.batchAddGroupMembers({
        organizationId: org,
        groupId,
        organizationMembershipIds: members.filter((_, i) => inGroup(i, g)),
      });
    }
    // A deleted group is no one's group any more.
    await c.groups.deleteGroup({ organizationId: org, groupId: groups[11] });
    const missing = "om_01JZZZZZZZZZZZZZZZZZZZZZZZ";

    type Call = { label: string; run: (x: Clients) => Promise<unknown>; expected?: string[] };
    const calls: Call[] = [];
    members.forEach((m, i) => {
      // Asks of 1, 3, 7 and all 12 groups (+ an unknown id), so the batch's id lists differ in length.
      const asked = groups
        .slice(0, [1, 3, 7, 12][i % 4])
        .concat(i % 4 === 3 ? ["group_01JZZZZZZZZZZZZZZZZZZZZZZZ"] : []);
      calls.push({
        label: `check ${i}`,
        run: (x) => x.groups.checkGroupMembership({ organizationMembershipId: m, groupIds: asked }),
        expected: asked.filter((id) => {
          const g = groups.indexOf(id);
          return g >= 0 && g < 11 && inGroup(i, g);
        }),
      });
      // Pages of different shapes: limits, orders and cursors.
      const limit = 1 + (i % 3);
      const order = i % 2 === 0 ? Order.ASC : Order.DESC;
      calls.push({
        label: `list ${i} limit ${limit} order ${order}`,
        run: (x) =>
          x.groups.listGroupsForOrganizationMembership({
            organizationMembershipId: m,
            limit,
            order,
          }),
      });
      calls.push({
        label: `list ${i} after ${groups[i % 11]}`,
        run: (x) =>
          x.groups.listGroupsForOrganizationMembership({
            organizationMembershipId: m,
            limit: 100,
            after: groups[i % 11],
            order: Order.ASC,
          }),
      });
      calls.push({
        label: `list ${i} before ${groups[(i + 5) % 11]}`,
        run: (x) =>
          x.groups.listGroupsForOrganizationMembership({
            organizationMembershipId: m,
            limit: 2,
            before: groups[(i + 5) % 11],
          }),
      });
    });
    // Checks of 100 ids (the 12 groups and 88 ids of no group, different for each). A batch
    // asking about more than 128 group ids is split (test/unit/membership-checks.test.ts).
    for (let i = 0; i < 8; i++) {
      const m = members[i * 3];
      const asked = [
        ...groups,
        ...Array.from(
          { length: 88 },
          (_, k) => `group_01JY${String(i * 100 + k).padStart(22, "0")}`,
        ),
      ];
      calls.push({
        label: `check ${i * 3} of 100 groups`,
        run: (x) => x.groups.checkGroupMembership({ organizationMembershipId: m, groupIds: asked }),
        expected: groups.filter((_, g) => g < 11 && inGroup(i * 3, g)),
      });
    }
    // GetGroup: each group in its organization (the deleted one, and the other organization's
    // group asked under this one, are not found), twice each, so ids repeat within a statement.
    for (const round of [1, 2])
      for (const [organizationId, groupId] of [
        ...groups.map((g) => [org, g]),
        [other, foreignGroup],
        [org, foreignGroup],
        [other, groups[0]],
        [org, "group_01JZZZZZZZZZZZZZZZZZZZZZZZ"],
        ["org_01JZZZZZZZZZZZZZZZZZZZZZZZ", groups[0]],
      ])
        calls.push({
          label: `get ${organizationId} ${groupId} (${round})`,
          run: (x) => x.groups.getGroup({ organizationId, groupId }),
        });
    calls.push(
      {
        label: "check of an unknown membership",
        run: (x) =>
          x.groups.checkGroupMembership({ organizationMembershipId: missing, groupIds: groups }),
      },
      {
        label: "list of an unknown membership",
        run: (x) =>
          x.groups.listGroupsForOrganizationMembership({ organizationMembershipId: missing }),
      },
      {
        label: "list after another organization's group",
        run: (x) =>
          x.groups.listGroupsForOrganizationMembership({
            organizationMembershipId: members[1],
            after: foreignGroup,
          }),
      },
    );
    const answer = (o: Outcome<unknown>) =>
      o.ok
        ? JSON.stringify(o.value, (_, v) => (typeof v === "bigint" ? String(v) : v))
        : describeFailure(o);

    // Alone: one call at a time, each read by a statement of its own.
    const metrics = async () => ({
      check: await sharedReads("CheckGroupMembership"),
      list: await sharedReads("ListGroupsForOrganizationMembership"),
      get: await sharedReads("GetGroup"),
    });
    const kinds = ["check", "list", "get"] as const;
    const counts = Object.fromEntries(
      kinds.map((k) => [k, calls.filter((call) => call.label.startsWith(k)).length]),
    ) as Record<(typeof kinds)[number], number>;
    expect(counts.check + counts.list + counts.get).toBe(calls.length);
    const m0 = await metrics();
    const alone: string[] = [];
    for (const call of calls) alone.push(answer(await outcome(call.run(c))));
    // The answers alone are right: checks list the groups the membership is in, in request order.
    calls.forEach((call, i) => {
      if (call.expected) expect(JSON.parse(alone[i]).groupIds, call.label).toEqual(call.expected);
    });
    expect(alone.at(-3)).toMatch(/^NotFound ORGANIZATION_MEMBERSHIP_NOT_FOUND/);
    expect(alone.at(-2)).toMatch(/^NotFound ORGANIZATION_MEMBERSHIP_NOT_FOUND/);
    expect(alone.at(-1)).toMatch(/^InvalidArgument /);
    // GetGroup alone: the live groups, each of its own organization; the rest not found.
    const got = (label: string) => alone[calls.findIndex((call) => call.label === label)];
    for (const round of [1, 2]) {
      groups.slice(0, 11).forEach((g, i) => {
        const found = JSON.parse(got(`get ${org} ${g} (${round})`)).group;
        expect(found, g).toMatchObject({ id: g, organizationId: org, name: `R${i}` });
      });
      expect(JSON.parse(got(`get ${other} ${foreignGroup} (${round})`)).group).toMatchObject({
        id: foreignGroup,
        organizationId: other,
      });
      for (const [o, g] of [
        [org, groups[11]],
        [org, foreignGroup],
        [other, groups[0]],
        [org, "group_01JZZZZZZZZZZZZZZZZZZZZZZZ"],
      ])
        expect(got(`get ${o} ${g} (${round})`)).toMatch(/^NotFound GROUP_NOT_FOUND/);
      expect(got(`get org_01JZZZZZZZZZZZZZZZZZZZZZZZ ${groups[0]} (${round})`)).toMatch(
        /^NotFound ORGANIZATION_NOT_FOUND/,
      );
    }
    const m1 = await metrics();
    for (const kind of kinds)
      expect(m1[kind].statements - m0[kind].statements, kind).toBe(counts[kind]);
    // Every statement was timed, and the timings add up to real time.
    for (const kind of kinds) {
      expect(m1[kind].timed - m0[kind].timed, kind).toBe(m1[kind].statements - m0[kind].statements);
      expect(m1[kind].seconds - m0[kind].seconds, kind).toBeGreaterThan(0);
    }

    // Together: every call at once from 32 clients on both doors; each gets the same answer.
    // The group reads all go on one client's connection, so they arrive in a burst: a point
    // read is quick enough that reads trickling in one per connection each find a statement
    // slot free and never wait to share one.
    const clients = clientPool(32);
    const together = (
      await Promise.all(
        calls.map((call, i) =>
          outcome(call.run(clients[call.label.startsWith("get") ? 0 : i % 32])),
        ),
      )
    ).map(answer);
    expect(together).toEqual(alone);
    const m2 = await metrics();
    for (const kind of kinds) expect(m2[kind].calls - m1[kind].calls, kind).toBe(counts[kind]);
    // On MariaDB, calls arriving together shared statements. (The embedded SQLite store
    // answers synchronously, so each call is read before the next arrives.)
    if (TEST_DATABASE === "mysql") {
      for (const kind of kinds)
        expect(m2[kind].statements - m1[kind].statements, kind).toBeLessThan(counts[kind]);
    }
  });
});
