import type { EntityManager } from "typeorm";
import { describe, expect, it } from "vitest";
import { membershipsInGroups, type MembershipAsk } from "../../server/src/store/group-members.js";

type Done = (err: Error | null, result: unknown) => void;

/**
 * CheckGroupMembership's shared reads (store/group-members.ts) over a stand-in
 * for mysql2's pool that answers the statement from an in-memory link table,
 * the way MariaDB would: each asked membership that exists, with a row per
 * link to an asked group, or one row with groupId NULL.
 */
function linkStore(links: Record<string, string[]>) {
  const statements: { groupIds: string[]; membershipIds: string[] }[] = [];
  const execute = (sql: string, params: unknown[], done: Done) => {
    const lists = [...sql.matchAll(/IN \(([?, ]+)\)/g)].map((m) => m[1].split(",").length);
    expect(lists).toHaveLength(2);
    const groupIds = params.slice(0, lists[0]) as string[];
    const membershipIds = params.slice(lists[0]) as string[];
    expect(membershipIds).toHaveLength(lists[1]);
    statements.push({ groupIds, membershipIds });
    type Row = { membershipId: string; organizationId: string; groupId: string | null };
    const rows = [...new Set(membershipIds)]
      .filter((m) => links[m])
      .flatMap((m): Row[] => {
        const linked = links[m].filter((g) => groupIds.includes(g));
        return linked.length === 0
          ? [{ membershipId: m, organizationId: "org_A", groupId: null }]
          : linked.map((g) => ({ membershipId: m, organizationId: "org_A", groupId: g }));
      });
    done(null, rows);
  };
  const db = {
    queryRunner: undefined,
    connection: { options: { type: "mysql" }, driver: { pool: { execute } } },
  } as unknown as EntityManager;
  return { db, statements };
}

const group = (n: number) => `group_${n}`;
const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

describe("membershipsInGroups", () => {
  it("answers each ask with its own asked groups only, from one statement for a batch", async () => {
    // m1 is in groups 1–3, m2 in 3–5, m3 in none; m4 does not exist.
    const { db, statements } = linkStore({
      m1: [group(1), group(2), group(3)],
      m2: [group(3), group(4), group(5)],
      m3: [],
    });
    const asks: MembershipAsk[] = [
      { membershipId: "m1", groupIds: [group(1), group(4)] },
      // m2's row for group 4 is read because m1's ask names it; m2's answer must not.
      { membershipId: "m2", groupIds: [group(3)] },
      { membershipId: "m3", groupIds: [group(1), group(2)] },
      { membershipId: "m4", groupIds: [group(1)] },
      { membershipId: "m1", groupIds: [group(3), group(9)] },
    ];
    const answers = await membershipsInGroups(db, asks);
    expect(answers.map((a) => a && [a.organizationId, [...a.groupIds].sort()])).toEqual([
      ["org_A", [group(1)]],
      ["org_A", [group(3)]],
      ["org_A", []],
      undefined,
      ["org_A", [group(3)]],
    ]);
    expect(statements).toHaveLength(1);
    // Padded: the group ids to at least 16, the memberships to a power of two.
    expect(statements[0].groupIds).toHaveLength(16);
    expect(new Set(statements[0].groupIds)).toEqual(
      new Set([group(1), group(4), group(3), group(2), group(9)]),
    );
    expect(statements[0].membershipIds).toHaveLength(4);
    expect(new Set(statements[0].membershipIds)).toEqual(new Set(["m1", "m2", "m3", "m4"]));
  });

  it("splits a batch that asks about more than 128 group ids, and answers every ask", async () => {
    // 16 memberships, membership i in the groups g ≡ i (mod 4) of 0–199.
    const links: Record<string, string[]> = {};
    for (let i = 0; i < 16; i++)
      links[`m${i}`] = Array.from({ length: 200 }, (_, g) => g)
        .filter((g) => g % 4 === i % 4)
        .map(group);
    const { db, statements } = linkStore(links);
    // Each asks about 30 groups of its own stretch of 0–199: 480 ids in all.
    const asks: MembershipAsk[] = Array.from({ length: 16 }, (_, i) => ({
      membershipId: `m${i}`,
      groupIds: Array.from({ length: 30 }, (_, k) => group((i * 12 + k) % 200)),
    }));
    const answers = await membershipsInGroups(db, asks);
    asks.forEach((ask, i) => {
      const expected = ask.groupIds.filter((g) => links[ask.membershipId].includes(g));
      expect([...answers[i]!.groupIds].sort(), ask.membershipId).toEqual(expected.sort());
    });
    expect(statements.length).toBeGreaterThan(1);
    for (const s of statements) {
      expect(new Set(s.groupIds).size).toBeLessThanOrEqual(128);
      expect(isPowerOfTwo(s.groupIds.length)).toBe(true);
      expect(isPowerOfTwo(s.membershipIds.length)).toBe(true);
    }
    // Every ask went in exactly one statement.
    const asked = statements.flatMap((s) => [...new Set(s.membershipIds)]);
    expect(asked.sort()).toEqual(asks.map((a) => a.membershipId).sort());
  });
});
