import type { Door, OpName, RawOp, ServiceOp } from "./ops.js";

/** One measured case: an operation through one door at one concurrency. */
export interface CaseDef {
  key: string;
  op: OpName;
  door: Door;
  concurrency: number;
  kind: "service" | "baseline";
  label: string;
  /** Changes data that the relay must then publish (the next case waits for it). */
  writes: boolean;
  /** What the throughput counts. */
  unit: "calls" | "memberships";
  /** Key of the raw baseline running the same SQL at the same concurrency. */
  sameSql?: string;
  /** A reference run again right before this service op's pair (see NEIGHBOUR_REFERENCES). */
  nextTo?: ServiceOp;
}

export const caseKey = (door: Door, op: OpName, concurrency: number) =>
  `${door} ${op} @${concurrency}`;

/** The key of `reference` (a caseKey) run again right before `op`'s pair. */
export const neighbourKey = (reference: string, op: OpName) => `${reference} next to ${op}`;

type Reference = Pick<CaseDef, "op" | "door" | "label">;
const TRIVIAL_GRPC: Reference = {
  op: "Health.Check",
  door: "grpc",
  label: "trivial RPC: grpc.health.v1.Health/Check",
};
const TWO_INSERT_TX: Reference = {
  op: "raw.twoInsertTx",
  door: "mysql2",
  label: "two INSERTs + COMMIT (durable)",
};

/**
 * Issue 7's ratio targets at 16 in flight compare a hot path with a fixed
 * reference. Measured only at the start of a run, that reference can run on a
 * quieter or busier machine than the hot path minutes later (two vCPUs whose
 * host is shared drift so); run again right before the hot path's pair, it
 * shares its conditions, as the same-SQL baseline does.
 */
const NEIGHBOUR_REFERENCES: Partial<Record<ServiceOp, Reference>> = {
  "AddGroupMember.spread": TWO_INSERT_TX,
  "AddGroupMember.hot": TWO_INSERT_TX,
  CheckGroupMembership: TRIVIAL_GRPC,
  ListGroupsForOrganizationMembership: TRIVIAL_GRPC,
};

interface HotPath {
  op: ServiceOp;
  label: string;
  raw: RawOp;
  rawLabel: string;
  writes: boolean;
  unit?: "memberships";
}

/** Issue 7's hot paths, each with the raw transaction or queries it runs. */
export const HOT_PATHS: HotPath[] = [
  {
    op: "AddGroupMember.spread",
    label: "AddGroupMember (spread over all groups)",
    raw: "raw.addGroupMemberTx.spread",
    rawLabel: "AddGroupMember's transaction (same statements), spread",
    writes: true,
  },
  {
    op: "AddGroupMember.hot",
    label: "AddGroupMember (all into one hot group)",
    raw: "raw.addGroupMemberTx.hot",
    rawLabel: "AddGroupMember's transaction, one hot group",
    writes: true,
  },
  {
    op: "RemoveGroupMember",
    label: "RemoveGroupMember",
    raw: "raw.removeGroupMemberTx",
    rawLabel: "RemoveGroupMember's transaction",
    writes: true,
  },
  {
    op: "CheckGroupMembership",
    label: "CheckGroupMembership (10 group ids)",
    raw: "raw.checkGroupMembership",
    rawLabel: "its one prepared SELECT (the membership's links to the asked groups)",
    writes: false,
  },
  {
    op: "ListGroupsForOrganizationMembership",
    label: "ListGroupsForOrganizationMembership (limit 100)",
    raw: "raw.listGroupsForMembership",
    rawLabel: "its one prepared SELECT (the membership and its first 101 links)",
    writes: false,
  },
  {
    op: "ListGroupMembers.first",
    label: "ListGroupMembers, 1M group, first page of 100",
    raw: "raw.listGroupMembers.first",
    rawLabel: "its one prepared SELECT (live group joined to the keyset page's memberships)",
    writes: false,
  },
  {
    op: "ListGroupMembers.deep",
    label: "ListGroupMembers, 1M group, page 500,000 deep",
    raw: "raw.listGroupMembers.deep",
    rawLabel: "its one prepared SELECT (+ cursor check), 500,000 deep",
    writes: false,
  },
  {
    op: "GetGroup",
    label: "GetGroup",
    raw: "raw.getGroup",
    rawLabel: "point SELECT by primary key (GetGroup's query)",
    writes: false,
  },
  {
    op: "CreateGroup",
    label: "CreateGroup",
    raw: "raw.createGroupTx",
    rawLabel: "CreateGroup's transaction (SELECT, 2 INSERTs)",
    writes: true,
  },
  {
    op: "BatchAddGroupMembers",
    label: "BatchAddGroupMembers (1,000 per call)",
    raw: "raw.batchAddTx",
    rawLabel: "the batch transaction (1,000 links + 1,000 outbox rows)",
    writes: true,
    unit: "memberships",
  },
];

/**
 * Through Connect on PORT (JSON over HTTP/1.1), at 16 in flight, right after
 * the trivial Connect call: CheckGroupMembership first, its target's neighbour.
 */
export const CONNECT_SUBSET: ServiceOp[] = [
  "CheckGroupMembership",
  "AddGroupMember.spread",
  "GetGroup",
];

/**
 * Every case, in run order: the front-door and driver baselines first, then
 * per hot path and concurrency its raw baseline immediately followed by the
 * service call (so the pair shares the same conditions; for a ratio target,
 * its reference runs again between the two), then the Connect subset.
 */
export function buildPlan(concurrency: number[], only: string[]): CaseDef[] {
  const plan: CaseDef[] = [];
  const add = (c: Omit<CaseDef, "key">) => {
    const key = caseKey(c.door, c.op, c.concurrency);
    plan.push({ ...c, key: c.nextTo ? neighbourKey(key, c.nextTo) : key });
  };
  const reference = (ref: Reference, n: number, nextTo?: HotPath) =>
    add({
      ...ref,
      label: nextTo ? `${ref.label}, again right before ${nextTo.label}` : ref.label,
      concurrency: n,
      kind: "baseline",
      writes: false,
      unit: "calls",
      nextTo: nextTo?.op,
    });
  for (const n of concurrency) reference(TRIVIAL_GRPC, n);
  for (const n of concurrency) reference(TWO_INSERT_TX, n);
  for (const n of concurrency) {
    add({
      op: "jetstream.publish",
      door: "nats",
      concurrency: n,
      kind: "baseline",
      label: "JetStream publish with ack and Nats-Msg-Id",
      writes: false,
      unit: "calls",
    });
  }
  for (const p of HOT_PATHS) {
    for (const n of concurrency) {
      const unit = p.unit ?? "calls";
      add({
        op: p.raw,
        door: "mysql2",
        concurrency: n,
        kind: "baseline",
        label: p.rawLabel,
        writes: false,
        unit,
      });
      const neighbour = NEIGHBOUR_REFERENCES[p.op];
      if (neighbour && n === 16) reference(neighbour, n, p);
      add({
        op: p.op,
        door: "grpc",
        concurrency: n,
        kind: "service",
        label: p.label,
        writes: p.writes,
        unit,
        sameSql: caseKey("mysql2", p.raw, n),
      });
    }
  }
  reference({ ...TRIVIAL_GRPC, door: "connect" }, 16);
  for (const op of CONNECT_SUBSET) {
    const p = HOT_PATHS.find((h) => h.op === op)!;
    add({
      op,
      door: "connect",
      concurrency: 16,
      kind: "service",
      label: p.label,
      writes: p.writes,
      unit: "calls",
      sameSql: caseKey("mysql2", p.raw, 16),
    });
  }
  if (only.length === 0) return plan;
  return plan.filter((c) => only.some((o) => c.key.includes(o)));
}
