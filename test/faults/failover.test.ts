/**
 * Two replicas on one database and one NATS: exactly one relays. Load goes
 * through both; in the middle the leader is SIGKILLed (by PID); the load goes
 * on through the survivor, which takes the relay lease within seconds. At the
 * end nothing is lost, nothing is stored twice, and every group's events are
 * in the stream in sequence order = commit order = the order its sequential
 * writes were acknowledged. A StreamEvents reader on the survivor sees every
 * event once, in order, across the switch.
 *
 * A second case loses the lease without losing the process: the leader's lease
 * connection is killed in MariaDB (KILL CONNECTION) mid-load.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
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

const WORKERS = 6;
/** Mutating RPCs to issue in all (at least). */
const TOTAL_WRITES = 1_000;
/** The leader is killed once this many writes are done. */
const KILL_AFTER_WRITES = 400;

let nats: NatsProcess | undefined;
let nc: NatsConnection | undefined;
const databases: TestDatabase[] = [];
const processes: ServerProcess[] = [];

beforeAll(async () => {
  nats = await startNatsProcess();
  nc = await connectNats(nats.url);
});

afterAll(async () => {
  for (const p of processes) await p.kill("SIGKILL").catch(() => undefined);
  await nc?.close().catch(() => undefined);
  // Removes the store directory, and the test streams with it.
  await nats?.stop().catch(() => undefined);
  for (const db of databases) await db.drop().catch(() => undefined);
});

// ---------------------------------------------------------------------------
// Calling two replicas
// ---------------------------------------------------------------------------

interface Conn {
  groups: Client<typeof GroupsService>;
  orgs: Client<typeof OrganizationsService>;
}

interface Replica {
  name: string;
  proc: ServerProcess;
  conn: Conn;
  /** Set just before it is killed: its failures are then expected. */
  dead: boolean;
}

interface Outcome<T> {
  /** Undefined when the call failed on the killed replica and was not retried. */
  value?: T;
  /** The call failed on the killed replica and was made again on the survivor. */
  retried: boolean;
  /** The call failed on the killed replica, was not retried: it may or may not have committed. */
  uncertain: boolean;
}

/**
 * Sends calls to the live replicas in turn. A call that fails on the killed
 * replica is either retried on the survivor (calls that are safe to repeat:
 * the workers' own groups, where a repeat of a committed change is a no-op)
 * or reported uncertain (shared groups, where others may have changed the
 * same thing meanwhile). Any other failure is an error.
 */
class Caller {
  private turn = 0;
  retries = 0;
  uncertain = 0;

  constructor(readonly replicas: Replica[]) {}

  private live(): Replica[] {
    return this.replicas.filter((r) => !r.dead);
  }

  async call<T>(
    fn: (c: Conn) => Promise<T>,
    opts: { onFailure: "retry" | "uncertain"; notFoundOnRetryOk?: boolean },
  ): Promise<Outcome<T>> {
    const live = this.live();
    const r = live[this.turn++ % live.length];
    try {
      return { value: await fn(r.conn), retried: false, uncertain: false };
    } catch (err) {
      if (!r.dead) throw err;
      if (opts.onFailure === "uncertain") {
        this.uncertain++;
        return { retried: false, uncertain: true };
      }
      this.retries++;
      try {
        return { value: await fn(this.live()[0].conn), retried: true, uncertain: false };
      } catch (again) {
        // e.g. a delete that committed the first time.
        if (opts.notFoundOnRetryOk && ConnectError.from(again).code === Code.NotFound) {
          return { retried: true, uncertain: false };
        }
        throw again;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Workload: each worker owns an organization (its groups are written by it
// alone, one call after another, so their expected events are known exactly
// and in order); all workers also add and remove members of two shared groups
// concurrently (expected: the events the responses announced, plus possibly
// those of calls cut off by the kill; per membership a strict added/removed
// alternation in stream order).
// ---------------------------------------------------------------------------

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
  if (e.data.case === "member")
    return `${e.type}|${e.data.value.organizationMembershipId}|${cause}`;
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
  /** Shared groups: the events the responses announced. */
  readonly shared = new Map<string, string[]>();
  /** Shared groups: events of calls cut off by the kill (each may or may not exist). */
  readonly maybe = new Map<string, string[]>();
  writes = 0;
  noops = 0;
  readonly anomalies: string[] = [];
  readonly errors: string[] = [];
  sharedOrg = "";
  sharedGroups: string[] = [];
  sharedMembers: string[] = [];

  constructor(
    private readonly caller: Caller,
    private readonly done: () => boolean,
  ) {}

  private async write<T>(
    fn: (c: Conn) => Promise<T>,
    opts: { onFailure: "retry" | "uncertain"; notFoundOnRetryOk?: boolean } = {
      onFailure: "retry",
    },
  ): Promise<Outcome<T>> {
    const outcome = await this.caller.call(fn, opts);
    this.writes++;
    return outcome;
  }

  async setupShared(): Promise<void> {
    const { value } = await this.write((c) => c.orgs.createOrganization({ name: "shared" }));
    this.sharedOrg = value!.organization!.id;
    for (let i = 0; i < 2; i++) {
      const created = await this.write((c) =>
        c.groups.createGroup({
          organizationId: this.sharedOrg,
          name: `shared-${i}`,
          requestId: `shared-${i}`,
        }),
      );
      const g = created.value!.group!.id;
      this.sharedGroups.push(g);
      this.shared.set(g, [
        groupKey("group.created", { name: `shared-${i}`, description: "" }, "api"),
      ]);
      this.maybe.set(g, []);
    }
    for (let i = 0; i < 10; i++) {
      const m = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: this.sharedOrg, userId: `s${i}` }),
      );
      this.sharedMembers.push(m.value!.organizationMembership!.id);
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
    const rand = rng(2000 + w);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const pickSome = <T>(xs: T[], n: number): T[] => {
      const copy = [...xs];
      const out: T[] = [];
      while (out.length < n && copy.length > 0) {
        out.push(copy.splice(Math.floor(rand() * copy.length), 1)[0]);
      }
      return out;
    };
    const anomaly = (what: string) => this.anomalies.push(`worker ${w}: ${what}`);

    const orgCreated = await this.write((c) => c.orgs.createOrganization({ name: `w${w}` }));
    const org = orgCreated.value!.organization!.id;
    const members: string[] = [];
    for (let i = 0; i < 6; i++) {
      const m = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: org, userId: `u${w}-${i}` }),
      );
      members.push(m.value!.organizationMembership!.id);
    }

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
      // Safe to retry: the request_id makes a repeat return the group the first call created.
      const { value } = await this.write((c) =>
        c.groups.createGroup({ organizationId: org, name, description, requestId }),
      );
      const g: OwnedGroup = { id: value!.group!.id, name, description, members: new Set() };
      this.owned.set(g.id, []);
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
          const { value, retried } = await this.write((c) =>
            c.groups.addGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
            }),
          );
          const was = g.members.has(m);
          if (!retried && value!.added === was) {
            anomaly(`addGroupMember(${g.id}, ${m}).added = ${value!.added}`);
          }
          g.members.add(m);
          expectEvents(g, was ? [] : [memberKey("group.member_added", m, "api")]);
        },
      ],
      [
        18, // remove one member, allow_missing (a no-op when not a member)
        async () => {
          const g = pick(groups);
          const m = pick(members);
          const { value, retried } = await this.write((c) =>
            c.groups.removeGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
              allowMissing: true,
            }),
          );
          const was = g.members.has(m);
          if (!retried && value!.removed !== was) {
            anomaly(`removeGroupMember(${g.id}, ${m}).removed = ${value!.removed}`);
          }
          g.members.delete(m);
          expectEvents(g, was ? [memberKey("group.member_removed", m, "api")] : []);
        },
      ],
      [
        7, // batch add
        async () => {
          const g = pick(groups);
          const ids = pickSome(members, 3);
          const { value, retried } = await this.write((c) =>
            c.groups.batchAddGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const fresh = ids.filter((m) => !g.members.has(m));
          const added = value!.results
            .filter((r) => r.added)
            .map((r) => r.organizationMembershipId);
          if (!retried && [...added].sort().join() !== [...fresh].sort().join()) {
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
          const { value, retried } = await this.write((c) =>
            c.groups.batchRemoveGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const gone = ids.filter((m) => g.members.has(m));
          const removed = value!.results
            .filter((r) => r.removed)
            .map((r) => r.organizationMembershipId);
          if (!retried && [...removed].sort().join() !== [...gone].sort().join()) {
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
          const { value } = await this.write((c) =>
            c.groups.updateGroup({ organizationId: org, groupId: g.id, ...req }),
          );
          const before = { name: g.name, description: g.description };
          if (req.name !== undefined) g.name = req.name;
          if (req.description !== undefined) g.description = req.description;
          if (value!.group?.name !== g.name || value!.group?.description !== g.description) {
            anomaly(
              `updateGroup(${g.id}) returned ${value!.group?.name}/${value!.group?.description}`,
            );
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
          const { value } = await this.write((c) =>
            c.groups.createGroup({
              organizationId: org,
              name: c0.name,
              description: c0.description,
              requestId: c0.requestId,
            }),
          );
          if (value!.group?.id !== c0.id) {
            anomaly(`replayed ${c0.requestId} gave ${value!.group?.id}, not ${c0.id}`);
          }
          this.noops++;
        },
      ],
      [
        2, // delete a group
        async () => {
          if (groups.length <= 3) return;
          const g = groups.splice(Math.floor(rand() * groups.length), 1)[0];
          await this.write((c) => c.groups.deleteGroup({ organizationId: org, groupId: g.id }), {
            onFailure: "retry",
            notFoundOnRetryOk: true,
          });
          expectEvents(g, [groupKey("group.deleted", g, "api")]);
        },
      ],
      [
        24, // shared groups, written by every worker at once
        async () => {
          const g = pick(this.sharedGroups);
          const m = pick(this.sharedMembers);
          const ref = { organizationId: this.sharedOrg, groupId: g, organizationMembershipId: m };
          const uncertain = { onFailure: "uncertain" } as const;
          if (rand() < 0.55) {
            const { value } = await this.write((c) => c.groups.addGroupMember(ref), uncertain);
            const key = memberKey("group.member_added", m, "api");
            if (!value) this.maybe.get(g)!.push(key);
            else if (value.added) this.shared.get(g)!.push(key);
            else this.noops++;
          } else {
            const { value } = await this.write(
              (c) => c.groups.removeGroupMember({ ...ref, allowMissing: true }),
              uncertain,
            );
            const key = memberKey("group.member_removed", m, "api");
            if (!value) this.maybe.get(g)!.push(key);
            else if (value.removed) this.shared.get(g)!.push(key);
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
    await sleep(100);
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

async function eventRows(db: TestDatabase): Promise<EventRow[]> {
  const [rows] = await db.sql.query<RowDataPacket[]>(
    `SELECT CAST(outbox_seq AS CHAR) AS outbox_seq, CAST(sequence AS CHAR) AS sequence, id, type,
            organization_id, group_id, published_at
     FROM events ORDER BY outbox_seq`,
  );
  return rows as EventRow[];
}

const tookLease = (p: ServerProcess) => p.logs.some((l) => l.includes("took the relay lease"));

/** The MariaDB connection id holding the relay lease, if any. */
async function lockHolder(db: TestDatabase): Promise<number | null> {
  const name = `groups_relay:${db.name}`.slice(0, 64);
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT IS_USED_LOCK(?) AS holder", [name]);
  return rows[0].holder === null ? null : Number(rows[0].holder);
}

async function isRunning(p: ServerProcess): Promise<boolean> {
  return Promise.race([p.exited.then(() => false), sleep(50).then(() => true)]);
}

const sameMultiset = (xs: string[], ys: string[]) =>
  [...xs].sort().join("\n") === [...ys].sort().join("\n");

/** `xs` minus `ys`, as multisets; undefined when `ys` is not contained in `xs`. */
function multisetMinus(xs: string[], ys: string[]): string[] | undefined {
  const rest = [...xs];
  for (const y of ys) {
    const i = rest.indexOf(y);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  return rest;
}

interface Cluster {
  db: TestDatabase;
  stream: string;
  subjectPrefix: string;
  leader: ServerProcess;
  follower: ServerProcess;
  ring: Replica[];
}

/** A fresh database and stream, two replicas on them; checks that exactly one relays. */
async function startCluster(): Promise<Cluster> {
  const db = await createTestDatabase();
  databases.push(db);
  const { stream, subjectPrefix } = uniqueStream();
  const env = {
    DATABASE_URL: db.url,
    AUTH_DISABLED: "1",
    NATS_URL: nats!.url,
    NATS_STREAM: stream,
    NATS_SUBJECT_PREFIX: subjectPrefix,
    RELAY_POLL_INTERVAL_MS: "100",
  };
  const started: ServerProcess[] = [];
  onTestFailed(() => {
    for (const p of started) {
      console.log(`logs of pid ${p.pid} (last 40 lines):\n${p.logs.slice(-40).join("\n")}`);
    }
  });
  // The first applies the migrations; then the second joins.
  for (let i = 0; i < 2; i++) {
    const p = await startServerProcess(env);
    processes.push(p);
    started.push(p);
  }
  await waitFor("a relay leader", async () => (started.some(tookLease) ? true : undefined), 15_000);
  await sleep(2_500); // longer than the follower's lease retry: it tried, and failed
  expect(started.filter(tookLease).length, "one relay at a time").toBe(1);
  expect(await lockHolder(db)).not.toBeNull();
  const leader = started.find(tookLease)!;
  const follower = started.find((p) => p !== leader)!;
  const ring: Replica[] = started.map((proc, i) => {
    const t = createGrpcTransport({ baseUrl: `http://127.0.0.1:${proc.grpcPort}` });
    return {
      name: `replica ${i + 1} (pid ${proc.pid})`,
      proc,
      conn: { groups: createClient(GroupsService, t), orgs: createClient(OrganizationsService, t) },
      dead: false,
    };
  });
  return { db, stream, subjectPrefix, leader, follower, ring };
}

interface StreamReader {
  /** The first event; the reader starts just after it. */
  first: EventRow;
  streamed: Event[];
  /** Stops reading; resolves the error that ended the stream early, if any. */
  stop(): Promise<unknown>;
}

/**
 * A StreamEvents reader on `p`, from just after the first event: it replays
 * what is recorded so far, then tails.
 */
async function readStream(db: TestDatabase, p: ServerProcess): Promise<StreamReader> {
  const first = await waitFor(
    "the first event to be sequenced",
    async () => {
      const [r] = await eventRows(db);
      return r?.sequence ? r : undefined;
    },
    15_000,
  );
  const streamed: Event[] = [];
  const abort = new AbortController();
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${p.grpcPort}` });
  let error: unknown;
  const reading = (async () => {
    try {
      const feed = createClient(EventsService, transport).streamEvents(
        { after: first.id },
        { signal: abort.signal },
      );
      for await (const m of feed) streamed.push(m.event!);
    } catch (err) {
      if (!abort.signal.aborted) error = err;
    }
  })();
  return {
    first,
    streamed,
    async stop() {
      abort.abort();
      await reading;
      return error;
    },
  };
}

async function drained(db: TestDatabase): Promise<EventRow[]> {
  return waitFor(
    "every event to be published",
    async () => {
      const r = await eventRows(db);
      return r.every((e) => e.published_at !== null && e.sequence !== null) ? r : undefined;
    },
    30_000,
  );
}

/**
 * The stream holds exactly one message per event row; per group, stream order
 * = sequence order = commit order, and the expected events (exactly, in
 * acknowledgement order, for groups written by one worker); the StreamEvents
 * reader saw every event after its start once, in sequence order.
 */
async function verify(cl: Cluster, load: Workload, rows: EventRow[], reader: StreamReader) {
  const stored = await storedEvents(nc!, cl.stream);
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const count = new Map<string, number>();
  for (const s of stored) {
    const id = s.headers["Nats-Msg-Id"];
    count.set(id, (count.get(id) ?? 0) + 1);
  }
  expect(
    rows.filter((r) => !count.has(r.id)).map((r) => `${r.sequence}:${r.id}:${r.type}`),
    "events lost",
  ).toEqual([]);
  expect(
    [...count].filter(([, k]) => k > 1).map(([id, k]) => `${id} ×${k}`),
    "stored duplicates",
  ).toEqual([]);
  expect(
    stored.filter((s) => !rowById.has(s.headers["Nats-Msg-Id"])).map((s) => s.seq),
    "messages without an event row",
  ).toEqual([]);
  expect(stored.length).toBe(rows.length);

  const wrong = stored.filter((s) => {
    const row = rowById.get(s.headers["Nats-Msg-Id"])!;
    return (
      s.event.id !== row.id ||
      String(s.event.sequence) !== row.sequence ||
      s.subject !== `${cl.subjectPrefix}.${row.organization_id}.${row.type}`
    );
  });
  expect(wrong.map((s) => s.seq)).toEqual([]);

  // Per group: stream order = sequence order = commit order.
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

  // Groups written by one worker: exactly the expected events, in acknowledgement order.
  const mismatched: string[] = [];
  for (const [g, txs] of load.owned) {
    const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
    let at = 0;
    const got = txs.map((tx) => keys.slice(at, (at += tx.length)));
    if (at !== keys.length || txs.some((tx, i) => !sameMultiset(tx, got[i]))) {
      mismatched.push(`${g}: expected ${JSON.stringify(txs)} got ${JSON.stringify(keys)}`);
    }
  }
  expect(mismatched).toEqual([]);

  // Shared groups: every announced event (plus at most those of cut-off calls);
  // per membership, added/removed alternate in stream order.
  for (const [g, announced] of load.shared) {
    const list = byGroup.get(g) ?? [];
    const extra = multisetMinus(
      list.map((s) => keyOfEvent(s.event)),
      announced,
    );
    expect(extra, `announced events of shared group ${g} are all there`).toBeDefined();
    expect(
      multisetMinus(load.maybe.get(g)!, extra!),
      `other events of ${g} come from calls cut off by the kill`,
    ).toBeDefined();
    const state = new Map<string, boolean>();
    const broken: string[] = [];
    for (const s of list) {
      if (s.event.data.case !== "member") continue;
      const m = s.event.data.value.organizationMembershipId;
      const adding = s.event.type === "group.member_added";
      if ((state.get(m) ?? false) === adding) {
        broken.push(`${s.event.type} ${m} at stream seq ${s.seq}`);
      }
      state.set(m, adding);
    }
    expect(broken, `commit order of shared group ${g}`).toEqual([]);
  }

  // Nothing beyond the groups the workers wrote.
  const known = new Set([...load.owned.keys(), ...load.shared.keys()]);
  expect(rows.filter((r) => !known.has(r.group_id)).map((r) => r.id)).toEqual([]);

  // StreamEvents: every event after the first, once, in sequence order, across the switch.
  await waitFor(
    "StreamEvents to deliver every event",
    async () => (reader.streamed.length >= rows.length - 1 ? true : undefined),
    20_000,
  ).catch(() => undefined);
  expect(await reader.stop(), "StreamEvents kept going").toBeUndefined();
  const bySequence = [...rows].sort((a, b) => (BigInt(a.sequence!) < BigInt(b.sequence!) ? -1 : 1));
  expect(bySequence[0].id).toBe(reader.first.id);
  expect(reader.streamed.map((e) => e.id)).toEqual(bySequence.slice(1).map((r) => r.id));
}

// ---------------------------------------------------------------------------

describe("two replicas, the relay leader fails mid-load", () => {
  it("leader SIGKILLed: the survivor takes over; no loss, no stored duplicate, per-group commit order", async () => {
    const cl = await startCluster();
    const caller = new Caller(cl.ring);
    let killed = false;
    const load: Workload = new Workload(caller, () => killed && load.writes >= TOTAL_WRITES);
    await load.setupShared();
    const reader = await readStream(cl.db, cl.follower);
    const workers = Array.from({ length: WORKERS }, (_, w) => load.worker(w));

    await waitFor(
      "the first writes",
      async () => (load.writes >= KILL_AFTER_WRITES || load.errors.length > 0 ? true : undefined),
      60_000,
    );
    const holderBefore = await lockHolder(cl.db);
    expect(tookLease(cl.follower), "the follower never relayed while the leader lived").toBe(false);
    const backlogAtKill = (await eventRows(cl.db)).filter((r) => r.published_at === null).length;
    cl.ring.find((r) => r.proc === cl.leader)!.dead = true;
    const exit = await cl.leader.kill("SIGKILL");
    const killedAt = Date.now();
    const writesAtKill = load.writes;
    killed = true;
    expect(exit.signal).toBe("SIGKILL");

    // The survivor takes the lease within a few seconds.
    await waitFor(
      "the survivor to take the relay lease",
      async () => (tookLease(cl.follower) ? true : undefined),
      10_000,
    );
    const takeoverMs = Date.now() - killedAt;
    const holderAfter = await lockHolder(cl.db);
    expect(holderAfter).not.toBeNull();
    expect(holderAfter).not.toBe(holderBefore);

    await Promise.all(workers);
    expect(load.errors, "every call to a live replica succeeds").toEqual([]);
    expect(load.anomalies, "responses agree with the workers' model").toEqual([]);
    expect(load.writes - writesAtKill, "writes went on through the survivor").toBeGreaterThan(100);

    const rows = await drained(cl.db);
    console.log(
      `failover (SIGKILL): ${load.writes} writes (${load.writes - writesAtKill} after the kill, ` +
        `${load.noops} no-ops), ${rows.length} events, ${backlogAtKill} unpublished at the kill; ` +
        `${caller.retries} calls retried, ${caller.uncertain} cut off; ` +
        `survivor took the lease ${takeoverMs} ms after the kill`,
    );
    expect(cl.follower.logs.filter((l) => l.includes("lost the relay lease"))).toEqual([]);
    await verify(cl, load, rows, reader);
  }, 90_000);

  it("leader's lease connection killed in MariaDB (the process lives): one relay again; no loss, no stored duplicate, per-group commit order", async () => {
    const cl = await startCluster();
    const caller = new Caller(cl.ring);
    let killed = false;
    const load: Workload = new Workload(caller, () => killed && load.writes >= TOTAL_WRITES);
    await load.setupShared();
    const reader = await readStream(cl.db, cl.follower);
    const workers = Array.from({ length: WORKERS }, (_, w) => load.worker(w));

    await waitFor(
      "the first writes",
      async () => (load.writes >= KILL_AFTER_WRITES || load.errors.length > 0 ? true : undefined),
      60_000,
    );
    const holder = await lockHolder(cl.db);
    expect(holder).not.toBeNull();
    const backlogAtKill = (await eventRows(cl.db)).filter((r) => r.published_at === null).length;
    await cl.db.sql.query(`KILL CONNECTION ${Number(holder)}`);
    const killedAt = Date.now();
    const writesAtKill = load.writes;
    killed = true;

    // Someone holds the lease again, on another connection.
    const newHolder = await waitFor(
      "a new relay lease holder",
      async () => {
        const h = await lockHolder(cl.db);
        return h !== null && h !== holder ? h : undefined;
      },
      10_000,
    );
    const takeoverMs = Date.now() - killedAt;

    await Promise.all(workers);
    expect(load.errors, "every call succeeds").toEqual([]);
    expect(load.anomalies, "responses agree with the workers' model").toEqual([]);
    expect(load.writes - writesAtKill).toBeGreaterThan(100);
    expect(await isRunning(cl.leader), "the old leader's process lives on").toBe(true);
    expect(await isRunning(cl.follower)).toBe(true);
    // The old leader noticed it lost the lease.
    expect(
      cl.leader.logs.some(
        (l) => l.includes("lost the relay lease") || l.includes("relay lease connection failed"),
      ),
    ).toBe(true);

    const rows = await drained(cl.db);
    const newLeader = [cl.leader, cl.follower].filter(
      (p) =>
        p.logs.filter((l) => l.includes("took the relay lease")).length > (p === cl.leader ? 1 : 0),
    );
    console.log(
      `failover (lease connection killed): ${load.writes} writes, ${rows.length} events, ` +
        `${backlogAtKill} unpublished at the kill; lease holder ${holder} → ${newHolder} ` +
        `${takeoverMs} ms later (${newLeader.map((p) => (p === cl.leader ? "old leader" : "follower")).join(", ")})`,
    );
    expect(await lockHolder(cl.db)).not.toBeNull();
    await verify(cl, load, rows, reader);
  }, 90_000);
});
