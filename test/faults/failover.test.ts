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
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { EventsService, type Event } from "../../clients/src/gen/groups/v1/events_pb.js";
import type { TestDatabase } from "../support/database.js";
import {
  connTo,
  eventRows,
  expectGroupsInCommitOrder,
  expectMembershipAlternation,
  expectOneMessagePerRow,
  grpcTransport,
  keyOfEvent,
  relayLockName,
  tookLease,
  useFaultRig,
  waitUntilPublished,
  type EventRow,
} from "../support/faults.js";
import { storedEvents, uniqueStream } from "../support/nats.js";
import type { ServerProcess } from "../support/process.js";
import type { Clients } from "../support/server.js";
import { sleep, waitFor } from "../support/wait.js";
import {
  Workload,
  type CallOptions,
  type Caller,
  type Outcome,
  type WorkloadOptions,
} from "../support/workload.js";

/** Mutating RPCs to issue in all (at least). */
const TOTAL_WRITES = 1_000;
/** The leader is killed once this many writes are done. */
const KILL_AFTER_WRITES = 400;
const LOAD: WorkloadOptions = {
  workers: 6,
  seed: 2000,
  membersPerWorker: 6,
  sharedMembers: 10,
  deleteMembershipWeight: 0,
  sharedWeight: 24,
};

const rig = useFaultRig();

// ---------------------------------------------------------------------------
// Calling two replicas
// ---------------------------------------------------------------------------

interface Replica {
  name: string;
  proc: ServerProcess;
  conn: Clients;
  /** Set just before it is killed: its failures are then expected. */
  dead: boolean;
}

/**
 * Sends calls to the live replicas in turn. A call that fails on the killed
 * replica is either retried on the survivor (calls that are safe to repeat:
 * the workers' own groups, where a repeat of a committed change is a no-op)
 * or reported uncertain (shared groups, where others may have changed the
 * same thing meanwhile). Any other failure is an error.
 */
class ReplicaCaller implements Caller {
  private turn = 0;
  retries = 0;
  uncertain = 0;

  constructor(readonly replicas: Replica[]) {}

  private live(): Replica[] {
    return this.replicas.filter((r) => !r.dead);
  }

  async call<T>(fn: (c: Clients) => Promise<T>, opts: CallOptions): Promise<Outcome<T>> {
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
// Helpers
// ---------------------------------------------------------------------------

/** The MariaDB connection id holding the relay lease, if any. */
async function lockHolder(db: TestDatabase): Promise<number | null> {
  const [rows] = await db.sql.query<RowDataPacket[]>("SELECT IS_USED_LOCK(?) AS holder", [
    relayLockName(db),
  ]);
  return rows[0].holder === null ? null : Number(rows[0].holder);
}

async function isRunning(p: ServerProcess): Promise<boolean> {
  return Promise.race([p.exited.then(() => false), sleep(50).then(() => true)]);
}

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
  const db = await rig.database();
  const { stream, subjectPrefix } = uniqueStream();
  const started: ServerProcess[] = [];
  // The first applies the migrations; then the second joins.
  for (let i = 0; i < 2; i++) started.push(await rig.startServer(db, { stream, subjectPrefix }));
  await waitFor("a relay leader", async () => (started.some(tookLease) ? true : undefined), 15_000);
  await sleep(2_500); // longer than the follower's lease retry: it tried, and failed
  expect(started.filter(tookLease).length, "one relay at a time").toBe(1);
  expect(await lockHolder(db)).not.toBeNull();
  const leader = started.find(tookLease)!;
  const follower = started.find((p) => p !== leader)!;
  const ring: Replica[] = started.map((proc, i) => ({
    name: `replica ${i + 1} (pid ${proc.pid})`,
    proc,
    conn: connTo(proc),
    dead: false,
  }));
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
  const transport = grpcTransport(p);
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

/**
 * The load through both replicas, and a StreamEvents reader on the follower;
 * resolves once the first writes are done. The load ends TOTAL_WRITES after
 * `killed()` is called.
 */
async function startLoad(cl: Cluster) {
  const caller = new ReplicaCaller(cl.ring);
  let killed = false;
  const load: Workload = new Workload(caller, LOAD, () => killed && load.writes >= TOTAL_WRITES);
  await load.setupShared();
  const reader = await readStream(cl.db, cl.follower);
  const workers = load.run();
  await load.firstWrites(KILL_AFTER_WRITES);
  return {
    caller,
    load,
    reader,
    workers,
    killed: () => {
      killed = true;
    },
  };
}

/**
 * The stream holds exactly one message per event row; per group, stream order
 * = sequence order = commit order, and the expected events (exactly, in
 * acknowledgement order, for groups written by one worker); the StreamEvents
 * reader saw every event after its start once, in sequence order.
 */
async function verify(cl: Cluster, load: Workload, rows: EventRow[], reader: StreamReader) {
  const stored = await storedEvents(await rig.nc(), cl.stream);
  const rowById = expectOneMessagePerRow(stored, rows);

  const wrong = stored.filter((s) => {
    const row = rowById.get(s.headers["Nats-Msg-Id"])!;
    return (
      s.event.id !== row.id ||
      String(s.event.sequence) !== row.sequence ||
      s.subject !== `${cl.subjectPrefix}.${row.organization_id}.${row.type}`
    );
  });
  expect(wrong.map((s) => s.seq)).toEqual([]);

  // Per group: stream order = sequence order = commit order; groups written by
  // one worker: exactly the expected events, in acknowledgement order.
  const byGroup = expectGroupsInCommitOrder(stored, rowById, load.owned);

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
    expectMembershipAlternation(g, list);
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
    const { caller, load, reader, workers, killed } = await startLoad(cl);

    const holderBefore = await lockHolder(cl.db);
    expect(tookLease(cl.follower), "the follower never relayed while the leader lived").toBe(false);
    const backlogAtKill = (await eventRows(cl.db)).filter((r) => !r.published).length;
    cl.ring.find((r) => r.proc === cl.leader)!.dead = true;
    const exit = await cl.leader.kill("SIGKILL");
    const killedAt = Date.now();
    const writesAtKill = load.writes;
    killed();
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

    await workers;
    expect(load.errors, "every call to a live replica succeeds").toEqual([]);
    expect(load.anomalies, "responses agree with the workers' model").toEqual([]);
    expect(load.writes - writesAtKill, "writes went on through the survivor").toBeGreaterThan(100);

    const rows = await waitUntilPublished(cl.db);
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
    const { load, reader, workers, killed } = await startLoad(cl);

    const holder = await lockHolder(cl.db);
    expect(holder).not.toBeNull();
    const backlogAtKill = (await eventRows(cl.db)).filter((r) => !r.published).length;
    await cl.db.sql.query(`KILL CONNECTION ${Number(holder)}`);
    const killedAt = Date.now();
    const writesAtKill = load.writes;
    killed();

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

    await workers;
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

    const rows = await waitUntilPublished(cl.db);
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
