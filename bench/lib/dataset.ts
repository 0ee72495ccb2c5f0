/**
 * The seeded data set, described by a few numbers so that the seeder (in the
 * orchestrator) and the load generator (another process) derive the same ids
 * without shipping a million of them between processes.
 *
 * Organization A: `memberships` memberships and `groups` groups; membership i
 * belongs to the `groupsPerMember` groups g with g ≡ i (mod stride), stride =
 * groups / groupsPerMember, so every group has memberships / stride members.
 * Organization B: `bigGroupMembers` memberships, all in one group (the deep
 * pagination case).
 *
 * Ids have the service's shape (prefix + 26-character ULID): one fixed time
 * part, then a tag (A or B) and the index in Crockford base32, so they sort by
 * index like ids minted one after another.
 */
export interface Dataset {
  memberships: number;
  groups: number;
  groupsPerMember: number;
  bigGroupMembers: number;
  /** The group that takes every "hot group" write. */
  hotGroup: number;
}

export function datasetFor(scale: number): Dataset {
  const groupsPerMember = 20;
  // A multiple of groupsPerMember, and at least two strides so every group has non-members.
  const groups = Math.max(
    2 * groupsPerMember,
    Math.round((1000 * scale) / groupsPerMember) * groupsPerMember,
  );
  const stride = groups / groupsPerMember;
  return {
    // At least 10,000: at the smoke's scale the hot group then has thousands of non-members,
    // more than its raw baseline and service case add in a smoke, however fast the machine
    // (with 2,000 it ran out, and the service's adds became no-ops).
    memberships: Math.max(2 * stride, Math.round(100_000 * scale), 10_000),
    groups,
    groupsPerMember,
    bigGroupMembers: Math.max(200, Math.round(1_000_000 * scale)),
    hotGroup: 0,
  };
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** The ULID time part of every seeded id: 2026-01-01T00:00:00Z. */
const TIME = encode(Date.UTC(2026, 0, 1), 10);

function encode(n: number, width: number): string {
  let s = "";
  for (let v = n; v > 0; v = Math.floor(v / 32)) s = CROCKFORD[v % 32] + s;
  return s.padStart(width, "0");
}

const id = (prefix: string, tag: "A" | "B" | "R", n: number) =>
  `${prefix}_${TIME}${tag}${encode(n, 15)}`;

export const ids = {
  orgA: id("org", "A", 0),
  orgB: id("org", "B", 0),
  memberA: (i: number) => id("om", "A", i),
  memberB: (i: number) => id("om", "B", i),
  group: (g: number) => id("group", "A", g),
  bigGroup: id("group", "B", 0),
  /** Groups the raw CreateGroup baseline inserts (never seeded). */
  rawGroup: (n: number) => id("group", "R", n),
  userA: (i: number) => `user_a_${String(i).padStart(7, "0")}`,
  userB: (i: number) => `user_b_${String(i).padStart(7, "0")}`,
};

export const strideOf = (d: Dataset) => d.groups / d.groupsPerMember;

/** Seeded member count of group g of organization A. */
export function seededMemberCount(d: Dataset, g: number): number {
  const s = strideOf(d);
  const r = g % s;
  return r < d.memberships ? Math.floor((d.memberships - 1 - r) / s) + 1 : 0;
}

/** The groups membership i of organization A was seeded into. */
export function seededGroupsOf(d: Dataset, i: number): number[] {
  const s = strideOf(d);
  return Array.from({ length: d.groupsPerMember }, (_, j) => (i % s) + j * s);
}

/**
 * Hands out (group, membership) pairs that change something: memberships not
 * yet in the group for adds, seeded members for removes, each pair once. If a
 * group runs out (only at tiny scales) it starts over and counts a wrap; the
 * call is then an idempotent no-op.
 */
export class PairAllocator {
  private readonly nextNonMember: Int32Array;
  private readonly nextMember: Int32Array;
  wraps = 0;

  constructor(private readonly d: Dataset) {
    this.nextNonMember = new Int32Array(d.groups);
    this.nextMember = new Int32Array(d.groups);
  }

  /** Index of a membership of organization A that is not (yet) in group g. */
  nonMember(g: number): number {
    const s = strideOf(this.d);
    for (;;) {
      const t = this.nextNonMember[g]++;
      const block = Math.floor(t / (s - 1));
      const i = block * s + (((g % s) + 1 + (t % (s - 1))) % s);
      if (i < this.d.memberships) return i;
      this.nextNonMember[g] = 0;
      this.wraps++;
    }
  }

  /** Index of a seeded member of group g (not handed out before). */
  member(g: number): number {
    const s = strideOf(this.d);
    for (;;) {
      const i = (g % s) + this.nextMember[g]++ * s;
      if (i < this.d.memberships) return i;
      this.nextMember[g] = 0;
      this.wraps++;
    }
  }
}
