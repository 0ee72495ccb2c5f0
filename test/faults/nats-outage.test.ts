/**
 * NATS dies in the middle of a few thousand mixed writes.
 *
 * A real service (child process) relays to a nats-server this file owns. Eight
 * workers drive mixed writes over gRPC; in the middle NATS is SIGKILLed (by
 * PID), the writes go on for several seconds, NATS is restarted on the same
 * port and store, and the writes finish. Then, once the outbox is drained, the
 * stream must hold exactly one message per event row (0 lost, 0 duplicates by
 * Nats-Msg-Id), nothing for no-ops, every group's events in commit order, and
 * ListEvents must return the same set.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import {
  EventCause,
  EventsService,
  type Event,
} from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import {
  connectNats,
  startNatsProcess,
  storedEvents,
  uniqueStream,
  type NatsProcess,
  type StoredEvent,
} from "../support/nats.js";
import { startServerProcess, type ServerProcess } from "../support/process.js";

const WORKERS = 8;
/** Mutating RPCs to issue in all (at least). */
const TOTAL_WRITES = 2_200;
/** Writes after NATS is back (at least), so the drain overlaps new writes. */
const WRITES_AFTER_RESTART = 300;
/** NATS is killed once this many writes are done. */
const KILL_AFTER_WRITES = 700;
/** How long NATS stays down while the writes go on. */
const OUTAGE_MS = 5_000;

let db: TestDatabase | undefined;
let nats: NatsProcess | undefined;
let server: ServerProcess | undefined;
let nc: NatsConnection | undefined;
const { stream, subjectPrefix } = uniqueStream();

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await startNatsProcess();
  server = await startServerProcess({
    DATABASE_URL: db.url,
    AUTH_DISABLED: "1",
    NATS_URL: nats.url,
    NATS_STREAM: stream,
    NATS_SUBJECT_PREFIX: subjectPrefix,
    RELAY_POLL_INTERVAL_MS: "100",
  });
});

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  await server?.kill("SIGKILL").catch(() => undefined);
  // Removes the store directory, and the test stream with it.
  await nats?.stop().catch(() => undefined);
  await db?.drop().catch(() => undefined);
});

// ---------------------------------------------------------------------------
// Workload: each worker owns an organization (its groups are written by it
// alone, one call after another, so their expected events are known exactly
// and in order); all workers also add and remove members of two shared groups
// concurrently (expected: the events the responses announced, and per
// membership a strict added/removed alternation in stream order).
// ---------------------------------------------------------------------------

interface Conn {
  groups: Client<typeof GroupsService>;
  orgs: Client<typeof OrganizationsService>;
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Cause = "api" | "system";
const memberKey = (type: string, membershipId: string, cause: Cause) =>
  `${type}|${membershipId}|${cause}`;
const groupKey = (type: string, g: { name: string; description: string }, cause: Cause) =>
  `${type}|${g.name}|${g.description}|${cause}`;

function keyOfEvent(e: Event): string {
  const cause =
    e.cause === EventCause.API ? "api" : e.cause === EventCause.SYSTEM ? "system" : "unspecified";
  if (e.data.case === "member") {
    return `${e.type}|${e.data.value.organizationMembershipId}|${cause}`;
  }
  if (e.data.case === "group") {
    const g = e.data.value.group;
    return `${e.type}|${g?.name}|${g?.description}|${cause}`;
  }
  return `${e.type}|no payload`;
}

interface OwnedGroup {
  id: string;
  name: string;
  description: string;
  members: Set<string>;
}

class Workload {
  /** Groups written by one worker only: their events, transaction by transaction, in order. */
  readonly owned = new Map<string, string[][]>();
  /** Shared groups: the events the responses announced (any order). */
  readonly shared = new Map<string, string[]>();
  /** Organization of every group written. */
  readonly orgOf = new Map<string, string>();
  writes = 0;
  noops = 0;
  readonly anomalies: string[] = [];
  readonly errors: string[] = [];
  sharedOrg = "";
  sharedGroups: string[] = [];
  sharedMembers: string[] = [];

  constructor(
    private readonly conn: Conn,
    private readonly done: () => boolean,
  ) {}

  private async write<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    const value = await fn(this.conn);
    this.writes++;
    return value;
  }

  async setupShared(): Promise<void> {
    const { organization } = await this.write((c) => c.orgs.createOrganization({ name: "shared" }));
    this.sharedOrg = organization!.id;
    for (let i = 0; i < 2; i++) {
      const { group } = await this.write((c) =>
        c.groups.createGroup({ organizationId: this.sharedOrg, name: `shared-${i}` }),
      );
      this.sharedGroups.push(group!.id);
      this.orgOf.set(group!.id, this.sharedOrg);
      this.shared.set(group!.id, [
        groupKey("group.created", { name: `shared-${i}`, description: "" }, "api"),
      ]);
    }
    for (let i = 0; i < 12; i++) {
      const { organizationMembership } = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: this.sharedOrg, userId: `s${i}` }),
      );
      this.sharedMembers.push(organizationMembership!.id);
    }
  }

  async worker(w: number): Promise<void> {
    try {
      await this.runWorker(w);
    } catch (err) {
      this.errors.push(`worker ${w} after ${this.writes} writes: ${String(err)}`);
    }
  }

  private async runWorker(w: number): Promise<void> {
    const rand = rng(1000 + w);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const pickSome = <T>(xs: T[], n: number): T[] => {
      const copy = [...xs];
      const out: T[] = [];
      while (out.length < n && copy.length > 0)
        out.push(copy.splice(Math.floor(rand() * copy.length), 1)[0]);
      return out;
    };
    const anomaly = (what: string) => this.anomalies.push(`worker ${w}: ${what}`);

    const { organization } = await this.write((c) => c.orgs.createOrganization({ name: `w${w}` }));
    const org = organization!.id;
    const members: string[] = [];
    let users = 0;
    const newMembership = async () => {
      const { organizationMembership } = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: org, userId: `u${w}-${users++}` }),
      );
      members.push(organizationMembership!.id);
    };
    for (let i = 0; i < 8; i++) await newMembership();

    const groups: OwnedGroup[] = [];
    const created: { requestId: string; id: string; name: string; description: string }[] = [];
    let n = 0;
    const expectEvents = (g: OwnedGroup, keys: string[]) => {
      if (keys.length > 0) this.owned.get(g.id)!.push(keys);
      else this.noops++;
    };

    const createGroup = async () => {
      const k = n++;
      const name = `g${w}-${k}`;
      const description = k % 2 === 0 ? "" : `about ${k}`;
      const requestId = `rq-${w}-${k}`;
      const { group } = await this.write((c) =>
        c.groups.createGroup({ organizationId: org, name, description, requestId }),
      );
      const g: OwnedGroup = { id: group!.id, name, description, members: new Set() };
      this.owned.set(g.id, []);
      this.orgOf.set(g.id, org);
      expectEvents(g, [groupKey("group.created", g, "api")]);
      groups.push(g);
      created.push({ requestId, id: g.id, name, description });
    };
    for (let i = 0; i < 3; i++) await createGroup();

    const ops: [number, () => Promise<void>][] = [
      [
        26, // add one member (a no-op when already a member)
        async () => {
          const g = pick(groups);
          const m = pick(members);
          const res = await this.write((c) =>
            c.groups.addGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
            }),
          );
          const was = g.members.has(m);
          if (res.added === was) anomaly(`addGroupMember(${g.id}, ${m}).added = ${res.added}`);
          g.members.add(m);
          expectEvents(g, was ? [] : [memberKey("group.member_added", m, "api")]);
        },
      ],
      [
        18, // remove one member, allow_missing (a no-op when not a member)
        async () => {
          const g = pick(groups);
          const m = pick(members);
          const res = await this.write((c) =>
            c.groups.removeGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
              allowMissing: true,
            }),
          );
          const was = g.members.has(m);
          if (res.removed !== was)
            anomaly(`removeGroupMember(${g.id}, ${m}).removed = ${res.removed}`);
          g.members.delete(m);
          expectEvents(g, was ? [memberKey("group.member_removed", m, "api")] : []);
        },
      ],
      [
        7, // batch add
        async () => {
          const g = pick(groups);
          const ids = pickSome(members, 3);
          const res = await this.write((c) =>
            c.groups.batchAddGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const fresh = ids.filter((m) => !g.members.has(m));
          const added = res.results.filter((r) => r.added).map((r) => r.organizationMembershipId);
          if ([...added].sort().join() !== [...fresh].sort().join()) {
            anomaly(`batchAdd(${g.id}) added ${added.join()} expected ${fresh.join()}`);
          }
          for (const m of fresh) g.members.add(m);
          expectEvents(
            g,
            fresh.map((m) => memberKey("group.member_added", m, "api")),
          );
        },
      ],
      [
        5, // batch remove
        async () => {
          const g = pick(groups);
          const ids = pickSome(members, 3).filter((m) => g.members.has(m) || rand() < 0.3);
          if (ids.length === 0) return;
          const res = await this.write((c) =>
            c.groups.batchRemoveGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const gone = ids.filter((m) => g.members.has(m));
          const removed = res.results
            .filter((r) => r.removed)
            .map((r) => r.organizationMembershipId);
          if ([...removed].sort().join() !== [...gone].sort().join()) {
            anomaly(`batchRemove(${g.id}) removed ${removed.join()} expected ${gone.join()}`);
          }
          for (const m of gone) g.members.delete(m);
          expectEvents(
            g,
            gone.map((m) => memberKey("group.member_removed", m, "api")),
          );
        },
      ],
      [
        10, // update: a third of them change nothing
        async () => {
          const g = pick(groups);
          const r = rand();
          const k = n++;
          const req =
            r < 0.33
              ? { name: g.name } // no-op
              : r < 0.66
                ? { name: `${g.name.split("~")[0]}~${k}` }
                : { description: g.description === "" ? `d${k}` : "" };
          const res = await this.write((c) =>
            c.groups.updateGroup({ organizationId: org, groupId: g.id, ...req }),
          );
          const before = { name: g.name, description: g.description };
          if (req.name !== undefined) g.name = req.name;
          if (req.description !== undefined) g.description = req.description;
          if (res.group?.name !== g.name || res.group?.description !== g.description) {
            anomaly(`updateGroup(${g.id}) returned ${res.group?.name}/${res.group?.description}`);
          }
          const changed = before.name !== g.name || before.description !== g.description;
          expectEvents(g, changed ? [groupKey("group.updated", g, "api")] : []);
        },
      ],
      [4, createGroup],
      [
        4, // CreateGroup replayed with a used request_id: same group, no event
        async () => {
          const c0 = pick(created);
          const { group } = await this.write((c) =>
            c.groups.createGroup({
              organizationId: org,
              name: c0.name,
              description: c0.description,
              requestId: c0.requestId,
            }),
          );
          if (group?.id !== c0.id)
            anomaly(`replayed ${c0.requestId} gave ${group?.id}, not ${c0.id}`);
          this.noops++;
        },
      ],
      [
        2, // delete a group
        async () => {
          if (groups.length <= 3) return;
          const g = groups.splice(Math.floor(rand() * groups.length), 1)[0];
          await this.write((c) => c.groups.deleteGroup({ organizationId: org, groupId: g.id }));
          expectEvents(g, [groupKey("group.deleted", g, "api")]);
        },
      ],
      [
        2, // delete a membership: member_removed (system) from every live group it was in
        async () => {
          if (members.length <= 4) return;
          const m = members.splice(Math.floor(rand() * members.length), 1)[0];
          await this.write((c) =>
            c.orgs.deleteOrganizationMembership({ organizationMembershipId: m }),
          );
          for (const g of groups) {
            if (g.members.delete(m))
              this.owned.get(g.id)!.push([memberKey("group.member_removed", m, "system")]);
          }
          await newMembership();
        },
      ],
      [
        22, // shared groups, written by every worker at once
        async () => {
          const g = pick(this.sharedGroups);
          const m = pick(this.sharedMembers);
          const ref = { organizationId: this.sharedOrg, groupId: g, organizationMembershipId: m };
          if (rand() < 0.55) {
            const res = await this.write((c) => c.groups.addGroupMember(ref));
            if (res.added) this.shared.get(g)!.push(memberKey("group.member_added", m, "api"));
            else this.noops++;
          } else {
            const res = await this.write((c) =>
              c.groups.removeGroupMember({ ...ref, allowMissing: true }),
            );
            if (res.removed) this.shared.get(g)!.push(memberKey("group.member_removed", m, "api"));
            else this.noops++;
          }
        },
      ],
    ];
    const totalWeight = ops.reduce((s, [wt]) => s + wt, 0);
    while (!this.done() && this.errors.length === 0) {
      let r = rand() * totalWeight;
      const op = ops.find(([wt]) => (r -= wt) < 0)?.[1] ?? ops[0][1];
      await op();
    }
  }

  expectedTotal(): number {
    let total = 0;
    for (const txs of this.owned.values()) for (const keys of txs) total += keys.length;
    for (const keys of this.shared.values()) total += keys.length;
    return total;
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
      );
    }
    await sleep(200);
  }
}

interface EventRow {
  outbox_seq: string;
  sequence: string | null;
  id: string;
  type: string;
  organization_id: string;
  group_id: string;
  published_at: Date | null;
}

async function eventRows(): Promise<EventRow[]> {
  const [rows] = await db!.sql.query<RowDataPacket[]>(
    `SELECT CAST(outbox_seq AS CHAR) AS outbox_seq, CAST(sequence AS CHAR) AS sequence, id, type,
            organization_id, group_id, published_at
     FROM events ORDER BY outbox_seq`,
  );
  return rows as EventRow[];
}

async function backlog(): Promise<{ unpublished: number; total: number }> {
  const [rows] = await db!.sql.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS total, COALESCE(SUM(published_at IS NULL), 0) AS unpublished FROM events",
  );
  return { total: Number(rows[0].total), unpublished: Number(rows[0].unpublished) };
}

function duplicatesByMsgId(stored: StoredEvent[]): string[] {
  const seen = new Map<string, number>();
  for (const s of stored) {
    const id = s.headers["Nats-Msg-Id"];
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
}

/** True when the multiset `xs` equals the multiset `ys`. */
const sameMultiset = (xs: string[], ys: string[]) =>
  [...xs].sort().join("\n") === [...ys].sort().join("\n");

// ---------------------------------------------------------------------------

describe("NATS killed in the middle of the writes", () => {
  it("keeps every write succeeding, then publishes every event exactly once, in per-group commit order", async () => {
    onTestFailed(() => {
      console.log(`server logs (last 60 lines):\n${server?.logs.slice(-60).join("\n")}`);
    });
    const grpc = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server!.grpcPort}` });
    const conn: Conn = {
      groups: createClient(GroupsService, grpc),
      orgs: createClient(OrganizationsService, grpc),
    };
    let phase: "before" | "outage" | "after" = "before";
    let writesAtRestart = Infinity;
    const load: Workload = new Workload(
      conn,
      () =>
        phase === "after" &&
        load.writes >= Math.max(TOTAL_WRITES, writesAtRestart + WRITES_AFTER_RESTART),
    );
    await load.setupShared();

    const workers = Array.from({ length: WORKERS }, (_, w) => load.worker(w));

    // Let the relay publish for a while, then take NATS away.
    await waitFor(
      "the first writes",
      async () => (load.writes >= KILL_AFTER_WRITES || load.errors.length > 0 ? true : undefined),
      60_000,
    );
    const beforeKill = await backlog();
    const writesAtKill = load.writes;
    await nats!.kill();
    phase = "outage";
    const outageStarted = Date.now();
    let outageBacklog = 0;
    while (Date.now() - outageStarted < OUTAGE_MS) {
      outageBacklog = Math.max(outageBacklog, (await backlog()).unpublished);
      await sleep(250);
    }
    const writesDuringOutage = load.writes - writesAtKill;
    const errorsDuringOutage = [...load.errors];
    await nats!.restart();
    writesAtRestart = load.writes;
    phase = "after";
    await Promise.all(workers);
    const writesAtEnd = load.writes;

    expect(load.errors, "every RPC succeeds, NATS up or down").toEqual([]);
    expect(errorsDuringOutage).toEqual([]);
    expect(load.anomalies, "responses agree with the workers' model").toEqual([]);
    expect(writesAtEnd).toBeGreaterThanOrEqual(TOTAL_WRITES);
    expect(writesAtEnd - writesAtRestart).toBeGreaterThanOrEqual(WRITES_AFTER_RESTART);
    expect(writesDuringOutage, "writes went on while NATS was down").toBeGreaterThan(100);
    expect(outageBacklog, "the outbox held events while NATS was down").toBeGreaterThan(0);
    expect(load.noops).toBeGreaterThan(50);

    // Drain: every row sequenced and published.
    const drained = await waitFor(
      "the relay to drain the outbox",
      async () => {
        const b = await backlog();
        return b.unpublished === 0 ? b : undefined;
      },
      60_000,
    );
    const rows = await eventRows();
    const expectedTotal = load.expectedTotal();
    console.log(
      `nats-outage: ${writesAtEnd} writes (${writesDuringOutage} while NATS was down, ${writesAtEnd - writesAtRestart} after its restart, ` +
        `${load.noops} no-ops), ${rows.length} events; backlog at kill ${beforeKill.unpublished}, ` +
        `peak during outage ${outageBacklog}`,
    );
    expect(drained.total).toBe(rows.length);
    expect(rows.length, "one event per change, none for no-ops").toBe(expectedTotal);
    expect(rows.filter((r) => r.sequence === null || r.published_at === null)).toEqual([]);

    nc = await connectNats(nats!.url);
    const stored = await storedEvents(nc, stream);
    const rowById = new Map(rows.map((r) => [r.id, r]));
    const storedIds = new Set(stored.map((s) => s.headers["Nats-Msg-Id"]));
    const lost = rows
      .filter((r) => !storedIds.has(r.id))
      .map((r) => `${r.sequence}:${r.id}:${r.type}`);
    const strangers = stored
      .filter((s) => !rowById.has(s.headers["Nats-Msg-Id"]))
      .map((s) => s.seq);
    expect(lost, "events lost").toEqual([]);
    expect(duplicatesByMsgId(stored), "stored duplicates").toEqual([]);
    expect(strangers, "messages with no event row").toEqual([]);
    expect(stored.length).toBe(rows.length);

    // Each message: its id, subject, headers and payload agree with its row.
    const wrong: string[] = [];
    for (const s of stored) {
      const row = rowById.get(s.headers["Nats-Msg-Id"])!;
      const e = s.event;
      if (
        e.id !== row.id ||
        s.headers["ce-id"] !== row.id ||
        s.headers["ce-type"] !== row.type ||
        e.type !== row.type ||
        e.organizationId !== row.organization_id ||
        String(e.sequence) !== row.sequence ||
        s.subject !== `${subjectPrefix}.${row.organization_id}.${row.type}`
      ) {
        wrong.push(
          `stream seq ${s.seq}: ${JSON.stringify(s.headers)} ${s.subject} seq=${e.sequence}`,
        );
      }
    }
    expect(wrong).toEqual([]);

    // Per group: stream order = sequence order = outbox (commit) order.
    const byGroup = new Map<string, StoredEvent[]>();
    for (const s of stored) {
      const g = rowById.get(s.event.id)!.group_id;
      byGroup.set(g, [...(byGroup.get(g) ?? []), s]);
    }
    const disorder: string[] = [];
    for (const [g, list] of byGroup) {
      for (let i = 1; i < list.length; i++) {
        const a = rowById.get(list[i - 1].event.id)!;
        const b = rowById.get(list[i].event.id)!;
        if (
          BigInt(a.sequence!) >= BigInt(b.sequence!) ||
          BigInt(a.outbox_seq) >= BigInt(b.outbox_seq)
        ) {
          disorder.push(`${g}: ${a.id} (seq ${a.sequence}) before ${b.id} (seq ${b.sequence})`);
        }
      }
    }
    expect(disorder, "per-group stream order = sequence order = commit order").toEqual([]);

    // Groups written by one worker: exactly the expected events, in the order the writes were acknowledged.
    const mismatched: string[] = [];
    for (const [g, txs] of load.owned) {
      const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
      let at = 0;
      const got: string[][] = txs.map((tx) => keys.slice(at, (at += tx.length)));
      if (at !== keys.length || txs.some((tx, i) => !sameMultiset(tx, got[i]))) {
        mismatched.push(`${g}: expected ${JSON.stringify(txs)} got ${JSON.stringify(keys)}`);
      }
    }
    expect(mismatched).toEqual([]);

    // Shared groups: the announced events, and per membership added/removed alternate in stream order.
    for (const [g, expected] of load.shared) {
      const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
      expect(sameMultiset(keys, expected), `events of shared group ${g}`).toBe(true);
      const state = new Map<string, boolean>();
      const broken: string[] = [];
      for (const s of byGroup.get(g) ?? []) {
        if (s.event.data.case !== "member") continue;
        const m = s.event.data.value.organizationMembershipId;
        const adding = s.event.type === "group.member_added";
        if ((state.get(m) ?? false) === adding)
          broken.push(`${s.event.type} ${m} at stream seq ${s.seq}`);
        state.set(m, adding);
      }
      expect(broken, `commit order of shared group ${g}`).toEqual([]);
    }

    // Every stored event belongs to a group the workers wrote, in the right organization.
    for (const s of stored) {
      const g = rowById.get(s.event.id)!.group_id;
      expect(load.orgOf.get(g)).toBe(s.event.organizationId);
    }

    // ListEvents returns the same set, in sequence order.
    const eventsClient = createClient(EventsService, grpc);
    const listed: Event[] = [];
    let after = "";
    for (;;) {
      const page = await eventsClient.listEvents({ after, limit: 1000 });
      listed.push(...page.events);
      after = page.listMetadata?.after ?? "";
      if (after === "" || page.events.length === 0) break;
    }
    expect(listed.length).toBe(rows.length);
    expect(new Set(listed.map((e) => e.id))).toEqual(new Set(rows.map((r) => r.id)));
    const listedSeqs = listed.map((e) => e.sequence);
    expect(listedSeqs.every((s, i) => i === 0 || s > listedSeqs[i - 1])).toBe(true);
  }, 150_000);
});
