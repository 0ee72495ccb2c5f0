/**
 * Plumbing and checks shared by the fault tests (test/faults): a nats-server,
 * databases and service processes a test file owns; the outbox rows as the
 * database holds them; event keys; and the checks that the stream holds one
 * message per event row, each group's in commit order.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, onTestFailed } from "vitest";
import { EventCause, type Event } from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { connectNats, startNatsProcess, type NatsProcess, type StoredEvent } from "./nats.js";
import { startServerProcess, type ServerProcess } from "./process.js";
import type { Clients } from "./server.js";
import { waitFor } from "./wait.js";

// ---------------------------------------------------------------------------
// What a test file owns
// ---------------------------------------------------------------------------

export interface FaultRig {
  /** The file's own nats-server (JetStream), started before its tests. */
  nats(): NatsProcess;
  /** A client of that server, connected on first use. */
  nc(): Promise<NatsConnection>;
  /** A fresh database, dropped after the file. */
  database(): Promise<TestDatabase>;
  /**
   * The service as a child process on `db`, relaying to the file's NATS on
   * stream `s` (with GROUPS_FAULT_INJECTION=`fault`, if given); SIGKILLed
   * after the file. Started inside a test, its last log lines are printed if
   * the test fails (pass `logsOnFailure: false` outside a test).
   */
  startServer(
    db: TestDatabase,
    s: { stream: string; subjectPrefix: string },
    opts?: { fault?: string; logsOnFailure?: boolean },
  ): Promise<ServerProcess>;
}

/**
 * Registers this file's beforeAll/afterAll: a nats-server of its own (killing
 * it touches nothing else), and, after the file, every process, connection,
 * store and database it handed out removed.
 */
export function useFaultRig(): FaultRig {
  let nats: NatsProcess | undefined;
  let nc: Promise<NatsConnection> | undefined;
  const databases: TestDatabase[] = [];
  const processes: ServerProcess[] = [];

  beforeAll(async () => {
    nats = await startNatsProcess();
  });

  afterAll(async () => {
    for (const p of processes) await p.kill("SIGKILL").catch(() => undefined);
    await (await nc?.catch(() => undefined))?.close().catch(() => undefined);
    // Removes the store directory, and the test streams with it.
    await nats?.stop().catch(() => undefined);
    for (const db of databases) await db.drop().catch(() => undefined);
  });

  return {
    nats: () => nats!,
    nc: () => (nc ??= connectNats(nats!.url)),
    async database() {
      const db = await createTestDatabase();
      databases.push(db);
      return db;
    },
    async startServer(db, s, { fault, logsOnFailure = true } = {}) {
      const p = await startServerProcess({
        DATABASE_URL: db.url,
        AUTH_DISABLED: "1",
        NATS_URL: nats!.url,
        NATS_STREAM: s.stream,
        NATS_SUBJECT_PREFIX: s.subjectPrefix,
        RELAY_POLL_INTERVAL_MS: "100",
        ...(fault ? { GROUPS_FAULT_INJECTION: fault } : {}),
      });
      processes.push(p);
      if (logsOnFailure) {
        onTestFailed(() => {
          console.log(`logs of pid ${p.pid} (last 40 lines):\n${p.logs.slice(-40).join("\n")}`);
        });
      }
      return p;
    },
  };
}

/** gRPC to a service process. */
export const grpcTransport = (p: ServerProcess) =>
  createGrpcTransport({ baseUrl: `http://127.0.0.1:${p.grpcPort}` });

/** Groups and Organizations clients of a service process, over gRPC. */
export function connTo(p: ServerProcess): Clients {
  const t = grpcTransport(p);
  return { groups: createClient(GroupsService, t), orgs: createClient(OrganizationsService, t) };
}

/** Whether the process has logged taking the relay lease. */
export const tookLease = (p: ServerProcess) =>
  p.logs.some((l) => l.includes("took the relay lease"));

/** The MySQL named lock that is the relay lease of `db`. */
export const relayLockName = (db: TestDatabase) => `groups_relay:${db.name}`.slice(0, 64);

// ---------------------------------------------------------------------------
// The outbox
// ---------------------------------------------------------------------------

export interface EventRow {
  outbox_seq: string;
  sequence: string | null;
  id: string;
  type: string;
  organization_id: string;
  group_id: string;
  /** At or below the relay's published-through watermark. */
  published: boolean;
}

/** Every event row, in outbox (commit) order. */
export async function eventRows(db: TestDatabase): Promise<EventRow[]> {
  const [rows] = await db.sql.query<RowDataPacket[]>(
    `SELECT CAST(e.outbox_seq AS CHAR) AS outbox_seq, CAST(e.sequence AS CHAR) AS sequence, e.id,
            e.type, e.organization_id, e.group_id,
            COALESCE(e.sequence <= p.published_through, 0) AS published
     FROM events e CROSS JOIN relay_progress p ORDER BY e.outbox_seq`,
  );
  return rows.map((r) => ({ ...r, published: Number(r.published) === 1 })) as EventRow[];
}

/** Waits until every event row (and, if given, exactly `total` of them) is sequenced and published. */
export async function waitUntilPublished(db: TestDatabase, total?: number): Promise<EventRow[]> {
  return waitFor(
    total === undefined ? "every event to be published" : `all ${total} events published`,
    async () => {
      const rows = await eventRows(db);
      return (total === undefined || rows.length === total) &&
        rows.every((r) => r.published && r.sequence !== null)
        ? rows
        : undefined;
    },
    30_000,
  );
}

// ---------------------------------------------------------------------------
// Event keys: what a test expects of an event, and what the stream holds
// ---------------------------------------------------------------------------

export type Cause = "api" | "system";

export const memberKey = (type: string, membershipId: string, cause: Cause) =>
  `${type}|${membershipId}|${cause}`;

export const groupKey = (type: string, g: { name: string; description: string }, cause: Cause) =>
  `${type}|${g.name}|${g.description}|${cause}`;

/** The key (as `memberKey` / `groupKey` make it) of a stored event. */
export function keyOfEvent(e: Event): string {
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

/** True when the multiset `xs` equals the multiset `ys`. */
export const sameMultiset = (xs: string[], ys: string[]) =>
  [...xs].sort().join("\n") === [...ys].sort().join("\n");

// ---------------------------------------------------------------------------
// Checks of what the stream holds
// ---------------------------------------------------------------------------

/**
 * The stream holds exactly one message per event row, by Nats-Msg-Id: none
 * lost, none stored twice, none without a row. Returns the rows by id.
 */
export function expectOneMessagePerRow(
  stored: StoredEvent[],
  rows: EventRow[],
): Map<string, EventRow> {
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
  return rowById;
}

/**
 * Per group, in stream order: stream order = sequence order; for the groups of
 * `expected` (one writer, one call at a time, so commit order is call order)
 * also = outbox order, and each holds exactly its expected events, transaction
 * by transaction, in order (within a transaction, in any order). Changes that
 * overlap in time on a shared group run side by side (share lock) and may
 * commit in the other order than they wrote their outbox rows; the relay
 * sequences what it finds committed, so only stream = sequence order holds
 * for them. Returns the stored messages by group.
 */
export function expectGroupsInCommitOrder(
  stored: StoredEvent[],
  rowById: Map<string, EventRow>,
  expected: Map<string, string[][]>,
): Map<string, StoredEvent[]> {
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
        (expected.has(g) && BigInt(a.outbox_seq) >= BigInt(b.outbox_seq))
      ) {
        disorder.push(`${g}: ${a.id} (seq ${a.sequence}) before ${b.id} (seq ${b.sequence})`);
      }
    }
  }
  expect(disorder, "per-group stream order = sequence order (= commit order)").toEqual([]);

  const mismatched: string[] = [];
  for (const [g, txs] of expected) {
    const keys = (byGroup.get(g) ?? []).map((s) => keyOfEvent(s.event));
    let at = 0;
    const got = txs.map((tx) => keys.slice(at, (at += tx.length)));
    if (at !== keys.length || txs.some((tx, i) => !sameMultiset(tx, got[i]))) {
      mismatched.push(`${g}: expected ${JSON.stringify(txs)} got ${JSON.stringify(keys)}`);
    }
  }
  expect(mismatched).toEqual([]);
  return byGroup;
}

/** Per membership, the group's member_added / member_removed events alternate in stream order. */
export function expectMembershipAlternation(g: string, list: StoredEvent[]): void {
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
