/**
 * Three replicas on one database and one NATS, load spread over all of them.
 *
 * Every replica serves every RPC; exactly one holds the relay lease and
 * publishes what all three commit. At the end the stream holds exactly one
 * message per event row (nothing lost, nothing doubled), each group's events
 * in commit order, and ListEvents on any replica returns the same set.
 */
import { createClient } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import type { TestDatabase } from "../support/database.js";
import { listAllEvents } from "../support/events.js";
import {
  connTo,
  expectGroupsInCommitOrder,
  expectOneMessagePerRow,
  grpcTransport,
  relayLockName,
  tookLease,
  useFaultRig,
  waitUntilPublished,
} from "../support/faults.js";
import { storedEvents, uniqueStream } from "../support/nats.js";
import type { ServerProcess } from "../support/process.js";
import type { Clients } from "../support/server.js";
import { Workload, type Caller } from "../support/workload.js";

const REPLICAS = 3;
const TOTAL_WRITES = 900;

const rig = useFaultRig();
let db: TestDatabase;
let replicas: ServerProcess[] = [];
const { stream, subjectPrefix } = uniqueStream();

beforeAll(async () => {
  db = await rig.database();
  replicas = await Promise.all(
    Array.from({ length: REPLICAS }, () =>
      rig.startServer(db, { stream, subjectPrefix }, { logsOnFailure: false }),
    ),
  );
});

/** Each call goes to the next replica in turn; every failure is an error. */
function roundRobin(conns: Clients[]): Caller & { perReplica: number[] } {
  let turn = 0;
  const perReplica = conns.map(() => 0);
  return {
    perReplica,
    async call(fn) {
      const i = turn++ % conns.length;
      perReplica[i]++;
      return { value: await fn(conns[i]), retried: false, uncertain: false };
    },
  };
}

describe(`${REPLICAS} replicas behind one load balancer`, () => {
  it("share the load with one relay: every event stored once, per-group commit order kept", async () => {
    const caller = roundRobin(replicas.map(connTo));
    const load: Workload = new Workload(
      caller,
      {
        workers: 6,
        seed: 3000,
        membersPerWorker: 6,
        sharedMembers: 10,
        deleteMembershipWeight: 2,
        sharedWeight: 20,
      },
      () => load.writes >= TOTAL_WRITES,
    );
    await load.setupShared();
    await load.run();
    expect(load.errors, "every RPC succeeds on every replica").toEqual([]);
    expect(load.anomalies).toEqual([]);
    expect(Math.min(...caller.perReplica)).toBeGreaterThan(TOTAL_WRITES / REPLICAS / 2);

    // One lease holder, and it is one of the three.
    expect(replicas.filter(tookLease)).toHaveLength(1);
    const [[lock]] = await db.sql.query<RowDataPacket[]>("SELECT IS_USED_LOCK(?) AS holder", [
      relayLockName(db),
    ]);
    expect(lock.holder).not.toBeNull();

    const rows = await waitUntilPublished(db, load.expectedTotal());
    expect(rows.length, "one event per change, none for no-ops").toBe(load.expectedTotal());
    const stored = await storedEvents(await rig.nc(), stream);
    const rowById = expectOneMessagePerRow(stored, rows);
    expectGroupsInCommitOrder(stored, rowById, load.owned);

    for (const replica of replicas) {
      const listed = await listAllEvents(createClient(EventsService, grpcTransport(replica)));
      expect(new Set(listed.map((e) => e.id))).toEqual(new Set(rows.map((r) => r.id)));
    }
  }, 150_000);
});
