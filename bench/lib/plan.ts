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
}

export const caseKey = (door: Door, op: OpName, concurrency: number) =>
  `${door} ${op} @${concurrency}`;

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
    rawLabel: "its one prepared SELECT (membership joined to the keyset page)",
    writes: false,
  },
  {
    op: "ListGroupMembers.first",
    label: "ListGroupMembers, 1M group, first page of 100",
    raw: "raw.listGroupMembers.first",
    rawLabel: "its 3 SELECTs (group, keyset page, memberships by id)",
    writes: false,
  },
  {
    op: "ListGroupMembers.deep",
    label: "ListGroupMembers, 1M group, page 500,000 deep",
    raw: "raw.listGroupMembers.deep",
    rawLabel: "its 4 SELECTs (+ cursor check), 500,000 deep",
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

/** Through Connect on PORT (JSON over HTTP/1.1), at 16 in flight. */
export const CONNECT_SUBSET: ServiceOp[] = [
  "AddGroupMember.spread",
  "CheckGroupMembership",
  "GetGroup",
];

/**
 * Every case, in run order: the front-door and driver baselines first, then
 * per hot path and concurrency its raw baseline immediately followed by the
 * service call (so the pair shares the same conditions), then the Connect subset.
 */
export function buildPlan(concurrency: number[], only: string[]): CaseDef[] {
  const plan: CaseDef[] = [];
  const add = (c: Omit<CaseDef, "key">) =>
    plan.push({ ...c, key: caseKey(c.door, c.op, c.concurrency) });
  for (const n of concurrency) {
    add({
      op: "Health.Check",
      door: "grpc",
      concurrency: n,
      kind: "baseline",
      label: "trivial RPC: grpc.health.v1.Health/Check",
      writes: false,
      unit: "calls",
    });
  }
  for (const n of concurrency) {
    add({
      op: "raw.twoInsertTx",
      door: "mysql2",
      concurrency: n,
      kind: "baseline",
      label: "two INSERTs + COMMIT (durable)",
      writes: false,
      unit: "calls",
    });
  }
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
  add({
    op: "Health.Check",
    door: "connect",
    concurrency: 16,
    kind: "baseline",
    label: "trivial RPC: grpc.health.v1.Health/Check",
    writes: false,
    unit: "calls",
  });
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
