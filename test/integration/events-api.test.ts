/**
 * groups.v1.EventsService (SPEC §3, §5; issue 3): ListEvents — oldest first,
 * filters, cursor pages, bad input — and StreamEvents — replay from a cursor
 * or from now, then tail live with the same filters, without gaps or repeats
 * across the switch, ending cleanly on abort — through every front door;
 * plus the client helpers (decodeEvent, toWorkOSEvent) on API events.
 */
import { randomBytes } from "node:crypto";
import { create, toBinary, toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import type { NatsConnection } from "nats";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeEvent } from "../../clients/src/events/subscriber.js";
import { toWorkOSEvent } from "../../clients/src/events/workos.js";
import {
  EventCause,
  EventSchema,
  EventsService,
  ListEventsRequestSchema,
  type Event,
  type StreamEventsRequest,
} from "../../clients/src/gen/groups/v1/events_pb.js";
import { badFields, expectError, ms } from "../support/assertions.js";
import {
  closeEventsServer,
  createMembers,
  EVENT_ID,
  expectWorkOSEvent,
  groupOf,
  memberOf,
  startEventsServer,
  type EventsServer,
  type Member,
} from "../support/events.js";
import { connectNats } from "../support/nats.js";
import { DOORS, type Clients, type Door, type TestServer } from "../support/server.js";
import { sleep, until } from "../support/wait.js";

const TYPES = [
  "group.created",
  "group.updated",
  "group.deleted",
  "group.member_added",
  "group.member_removed",
] as const;

type ListInit = MessageInitShape<typeof ListEventsRequestSchema>;
type StreamInit = Partial<Pick<StreamEventsRequest, "types" | "organizationId" | "after">>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async function expectInvalid(call: Promise<unknown>, field: string) {
  const err = await expectError(call, Code.InvalidArgument);
  expect(badFields(err)).toContain(field);
}

const ids = (events: Event[]) => events.map((e) => e.id);

const label = (e: Event) =>
  `${e.type} ${e.organizationId} ${groupOf(e)}${memberOf(e) ? ` ${memberOf(e)}` : ""}`;

/** Sequences rise by exactly one from each event to the next. */
function expectConsecutive(events: Event[], from?: bigint) {
  if (events.length === 0) return;
  if (from !== undefined) expect(events[0].sequence).toBe(from + 1n);
  const gaps = events
    .slice(1)
    .map((e, i) => e.sequence - events[i].sequence)
    .map((d, i) => ({ d, at: events[i + 1].sequence }))
    .filter((x) => x.d !== 1n);
  expect(gaps, "sequence steps other than +1").toEqual([]);
}

function expectIncreasing(events: Event[]) {
  for (let i = 1; i < events.length; i++) {
    expect(events[i].sequence).toBeGreaterThan(events[i - 1].sequence);
  }
}

// ---------------------------------------------------------------------------
// Server and fixtures
// ---------------------------------------------------------------------------

let server: EventsServer | undefined;
let t: TestServer;
let nc: NatsConnection | undefined;
let c: Clients; // grpc, for writes

let orgA: string;
let orgB: string;
let orgBurst: string;
let orgQuiet: string; // never has events
let mA: Member[];
let mB: Member[];
let burstMembers: Member[];
/** What the seed did, in order, as `label`s of the events it must have produced. */
const seedExpected: string[] = [];
/** Every event after the seed, as ListEvents returned it. */
let seed: Event[];

/** Waits until the relay has sequenced every committed event (ListEvents shows only those). */
async function settled(): Promise<void> {
  await until("every event sequenced", async () => {
    const [rows] = await t.db.sql.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM events WHERE sequence IS NULL",
    );
    return Number(rows[0].n) === 0;
  });
}

function eventsClient(door: Door): Client<typeof EventsService> {
  return createClient(EventsService, t.transport(door));
}

/** Every event matching `req` after its cursor, walking pages of `limit`. */
async function listAll(
  ev: Client<typeof EventsService>,
  req: ListInit = {},
  limit = 1000,
): Promise<Event[]> {
  const out: Event[] = [];
  let after = req.after ?? "";
  for (let page = 0; ; page++) {
    const res = await ev.listEvents({ ...req, after, limit });
    expect(res.events.length).toBeLessThanOrEqual(limit);
    out.push(...res.events);
    after = res.listMetadata?.after ?? "";
    if (after === "") return out;
    expect(after).toBe(res.events[res.events.length - 1].id);
    if (page > 10_000) throw new Error("ListEvents never ends");
  }
}

async function latestEvent(): Promise<Event> {
  await settled();
  const all = await listAll(eventsClient("grpc"));
  return all[all.length - 1];
}

const latestEventId = async () => (await latestEvent()).id;

beforeAll(async () => {
  nc = await connectNats();
  server = await startEventsServer();
  t = server.t;
  c = t.clients("grpc");

  orgA = (await c.orgs.createOrganization({ name: "List A" })).organization!.id;
  orgB = (await c.orgs.createOrganization({ name: "List B" })).organization!.id;
  orgBurst = (await c.orgs.createOrganization({ name: "Burst" })).organization!.id;
  orgQuiet = (await c.orgs.createOrganization({ name: "Quiet" })).organization!.id;
  mA = await createMembers(c, orgA, 4, "a");
  mB = await createMembers(c, orgB, 2, "b");
  burstMembers = await createMembers(c, orgBurst, 40, "burst");

  // The seed: one call at a time, so recording order is call order. Each call
  // records the event it must produce.
  const g = c.groups;
  const expectEvent = (type: string, org: string, group: string, member?: string) =>
    seedExpected.push(`${type} ${org} ${group}${member ? ` ${member}` : ""}`);
  const createGroup = async (org: string, name: string) => {
    const id = (await g.createGroup({ organizationId: org, name })).group!.id;
    expectEvent("group.created", org, id);
    return id;
  };
  const updateGroup = async (
    org: string,
    group: string,
    change: { name: string } | { description: string },
  ) => {
    await g.updateGroup({ organizationId: org, groupId: group, ...change });
    expectEvent("group.updated", org, group);
  };
  const deleteGroup = async (org: string, group: string) => {
    await g.deleteGroup({ organizationId: org, groupId: group });
    expectEvent("group.deleted", org, group);
  };
  const addMember = async (org: string, group: string, m: Member) => {
    await g.addGroupMember({ organizationId: org, groupId: group, organizationMembershipId: m.id });
    expectEvent("group.member_added", org, group, m.id);
  };
  const removeMember = async (org: string, group: string, m: Member) => {
    await g.removeGroupMember({
      organizationId: org,
      groupId: group,
      organizationMembershipId: m.id,
    });
    expectEvent("group.member_removed", org, group, m.id);
  };

  const gA1 = await createGroup(orgA, "A1");
  const gB1 = await createGroup(orgB, "B1");
  await addMember(orgA, gA1, mA[0]);
  await addMember(orgB, gB1, mB[0]);
  await updateGroup(orgA, gA1, { name: "A1 renamed" });
  for (const m of [mA[1], mA[2]]) await addMember(orgA, gA1, m);
  const gA2 = await createGroup(orgA, "A2");
  await addMember(orgA, gA2, mA[0]);
  await removeMember(orgA, gA1, mA[1]);
  await updateGroup(orgB, gB1, { description: "B one" });
  await deleteGroup(orgA, gA2);
  const gB2 = await createGroup(orgB, "B2");
  await addMember(orgB, gB2, mB[1]);
  await c.orgs.deleteOrganizationMembership({ organizationMembershipId: mA[2].id });
  expectEvent("group.member_removed", orgA, gA1, mA[2].id);
  for (let i = 0; i < 3; i++) {
    const org = i % 2 ? orgB : orgA;
    const gx = await createGroup(org, `X${i}`);
    await updateGroup(org, gx, { description: `x${i}` });
  }
  await removeMember(orgB, gB1, mB[0]);
  await deleteGroup(orgB, gB2);

  await settled();
  seed = await listAll(eventsClient("grpc"));
});

afterAll(async () => {
  await closeEventsServer(server, nc);
  await nc?.close();
});

// ---------------------------------------------------------------------------
// A stream collected in the background
// ---------------------------------------------------------------------------

interface OpenStream {
  got: Event[];
  /** Resolves when the stream ends (normally or with an error). */
  done: Promise<void>;
  error(): unknown;
  ended(): boolean;
  abort(): void;
  atLeast(n: number): Promise<Event[]>;
  /** Waits until the event with this id has arrived. */
  through(id: string): Promise<Event[]>;
}

function openStream(ev: Client<typeof EventsService>, req: StreamInit): OpenStream {
  const ac = new AbortController();
  const got: Event[] = [];
  let error: unknown;
  let ended = false;
  const done = (async () => {
    try {
      for await (const res of ev.streamEvents(req, { signal: ac.signal })) got.push(res.event!);
    } catch (err) {
      error = err;
    } finally {
      ended = true;
    }
  })();
  const s: OpenStream = {
    got,
    done,
    error: () => error,
    ended: () => ended,
    abort: () => ac.abort(),
    async atLeast(n) {
      await until(`${n} streamed events (have ${got.length})`, async () => {
        if (ended) throw new Error(`the stream ended early: ${String(error)}`);
        return got.length >= n;
      });
      return got;
    },
    async through(id) {
      await until(`streamed event ${id} (have ${got.length})`, async () => {
        if (ended) throw new Error(`the stream ended early: ${String(error)}`);
        return got.some((e) => e.id === id);
      });
      return got;
    },
  };
  return s;
}

/**
 * A stream from now has no "ready" signal: writes probes (one at a time) until
 * the first event arrives, so later writes surely happen while it follows.
 */
async function untilLive(s: OpenStream, probe: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; s.got.length === 0; i++) {
    if (s.ended()) throw new Error(`the stream ended: ${String(s.error())}`);
    if (i >= 100) throw new Error("no live event arrived");
    await probe(i);
    const deadline = Date.now() + 200;
    while (s.got.length === 0 && !s.ended() && Date.now() < deadline) await sleep(10);
  }
}

/** Some writes of every kind, in orgs A and B; returns nothing (read them back by cursor). */
async function mixedWrites(cl: Clients, n: number, tag: string): Promise<void> {
  const g = cl.groups;
  for (let i = 0; i < n; i++) {
    const org = i % 2 ? orgB : orgA;
    const members = i % 2 ? mB : [mA[0], mA[1], mA[3]];
    const group = (await g.createGroup({ organizationId: org, name: `${tag} ${i}` })).group!.id;
    await g.addGroupMember({
      organizationId: org,
      groupId: group,
      organizationMembershipId: members[0].id,
    });
    await g.addGroupMember({
      organizationId: org,
      groupId: group,
      organizationMembershipId: members[1].id,
    });
    await g.updateGroup({ organizationId: org, groupId: group, description: `${tag} ${i}` });
    await g.removeGroupMember({
      organizationId: org,
      groupId: group,
      organizationMembershipId: members[0].id,
    });
    if (i % 3 === 2) await g.deleteGroup({ organizationId: org, groupId: group });
  }
}

/** One write whose event marks "everything before it has been streamed". */
async function marker(org = orgA): Promise<string> {
  const before = await latestEventId();
  await c.groups.createGroup({
    organizationId: org,
    name: `marker ${randomBytes(3).toString("hex")}`,
  });
  await settled();
  const after = await listAll(eventsClient("grpc"), { after: before });
  expect(after).toHaveLength(1);
  return after[0].id;
}

// ---------------------------------------------------------------------------
// The seed itself
// ---------------------------------------------------------------------------

describe("recorded events", () => {
  it("every seeded call left exactly its event, in call order, with consecutive sequences", () => {
    expect(seed.map(label)).toEqual(seedExpected);
    expectConsecutive(seed);
    expect(new Set(ids(seed)).size).toBe(seed.length);
    for (const e of seed) {
      expect(e.id).toMatch(EVENT_ID);
      expect(e.createdAt!.nanos % 1_000_000).toBe(0);
      expect(e.cause).toBe(
        e.type === "group.member_removed" && memberOf(e) === mA[2].id
          ? EventCause.SYSTEM
          : EventCause.API,
      );
    }
    for (let i = 1; i < seed.length; i++) {
      expect(ms(seed[i].createdAt)).toBeGreaterThanOrEqual(ms(seed[i - 1].createdAt));
    }
  });

  it("the client helpers: decodeEvent round-trips, toWorkOSEvent renders every type", () => {
    for (const e of seed) {
      expect(decodeEvent(toBinary(EventSchema, e))).toEqual(e);
      expect(decodeEvent(toBinary(EventSchema, e), "application/protobuf")).toEqual(e);
      expect(
        decodeEvent(new TextEncoder().encode(toJsonString(EventSchema, e)), "application/json"),
      ).toEqual(e);

      expectWorkOSEvent(e);
    }
    const renamed = seed.find((e) => e.type === "group.updated" && e.organizationId === orgA)!;
    expect(toWorkOSEvent(renamed).data.previous_attributes).toEqual({ name: "A1" });
    // An event with no payload still renders an envelope.
    const bare = create(EventSchema, { id: "event_x", type: "group.created" });
    expect(toWorkOSEvent(bare)).toMatchObject({ object: "event", id: "event_x", data: {} });
  });
});

describe("ListEvents time bounds finer than a millisecond", () => {
  it("compares them exactly (or refuses them as INVALID_ARGUMENT)", async () => {
    const ev = eventsClient("grpc");
    // An event alone in its millisecond, so the bounds below select it or not.
    const e = seed.find(
      (x, i) =>
        i > 0 &&
        ms(seed[i - 1].createdAt) < ms(x.createdAt) &&
        (i === seed.length - 1 || ms(seed[i + 1].createdAt) > ms(x.createdAt)),
    )!;
    expect(e, "a seeded event alone in its millisecond").toBeDefined();
    const at = e.createdAt!;
    // 0.4 ms after the event: it is before this instant.
    const justAfter = { ...at, nanos: at.nanos + 400_000 };
    const results = async (req: ListInit, field: string) => {
      try {
        return ids(await listAll(ev, req));
      } catch (err) {
        expect(err).toBeInstanceOf(ConnectError);
        expect(Code[(err as ConnectError).code]).toBe(Code[Code.InvalidArgument]);
        expect(badFields(err as ConnectError)).toContain(field);
        return undefined;
      }
    };
    const startingAfter = await results({ rangeStart: justAfter }, "range_start");
    if (startingAfter) {
      expect
        .soft(startingAfter, "range_start is after the event: it is not listed")
        .not.toContain(e.id);
    }
    const endingAfter = await results({ rangeEnd: justAfter }, "range_end");
    if (endingAfter) {
      expect.soft(endingAfter, "range_end is after the event: it is listed").toContain(e.id);
    }
  });
});

describe("ListEvents time bounds at and beyond the ends of time", () => {
  // google.protobuf.Timestamp spans 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
  const FIRST = { seconds: -62_135_596_800n, nanos: 0 };
  const LAST = { seconds: 253_402_300_799n, nanos: 999_999_999 };

  it("refuses a Timestamp outside its definition as INVALID_ARGUMENT, naming each bound", async () => {
    const ev = eventsClient("grpc");
    const cases: [ListInit, string[]][] = [
      [{ rangeStart: { seconds: -1_000_000_000_000n } }, ["range_start"]],
      [{ rangeEnd: { seconds: 3_000_000_000_000n } }, ["range_end"]],
      [{ rangeStart: { seconds: LAST.seconds + 1n } }, ["range_start"]],
      [{ rangeEnd: { seconds: FIRST.seconds - 1n } }, ["range_end"]],
      [{ rangeStart: { seconds: 1n, nanos: -1 } }, ["range_start"]],
      [{ rangeEnd: { seconds: 1n, nanos: 1_000_000_000 } }, ["range_end"]],
      [
        { rangeStart: { seconds: -1_000_000_000_000n }, rangeEnd: { seconds: 3_000_000_000_000n } },
        ["range_start", "range_end"],
      ],
    ];
    for (const [req, fields] of cases) {
      const err = await expectError(ev.listEvents(req), Code.InvalidArgument);
      expect(
        new Set(badFields(err)),
        JSON.stringify(req, (_, v) => String(v)),
      ).toEqual(new Set(fields));
    }
  });

  it("refused bounds leave the database pool whole: more of them than it has connections", async () => {
    const ev = eventsClient("grpc");
    // The default pool has 16 connections; a bound that broke one each time would hang the 17th call.
    for (let i = 0; i < 40; i++) {
      await expectError(
        ev.listEvents({ rangeStart: { seconds: -1_000_000_000_000n } }),
        Code.InvalidArgument,
      );
    }
    expect((await ev.listEvents({ limit: 1 })).events).toHaveLength(1);
  });

  it("the first and last valid instants select as their meaning says", async () => {
    const ev = eventsClient("grpc");
    const all = ids(await listAll(ev));
    expect(all.length).toBeGreaterThan(0);
    expect(ids(await listAll(ev, { rangeStart: FIRST }))).toEqual(all);
    expect(ids(await listAll(ev, { rangeEnd: LAST }))).toEqual(all);
    expect(ids(await listAll(ev, { rangeStart: FIRST, rangeEnd: LAST }))).toEqual(all);
    expect(await listAll(ev, { rangeEnd: FIRST })).toEqual([]);
    expect(await listAll(ev, { rangeStart: LAST })).toEqual([]);
    // Before the year 1000 (below what a DATETIME holds) and after it.
    const year900 = timestampFromMs(Date.UTC(900, 0, 1));
    expect(await listAll(ev, { rangeEnd: year900 })).toEqual([]);
    expect(ids(await listAll(ev, { rangeStart: year900 }))).toEqual(all);
  });
});

// ---------------------------------------------------------------------------
// Through each door
// ---------------------------------------------------------------------------

describe.each(DOORS)("through %s", (door) => {
  let ev: Client<typeof EventsService>;
  let cl: Clients;

  beforeAll(() => {
    ev = eventsClient(door);
    cl = t.clients(door);
  });

  describe("ListEvents", () => {
    it("returns the events oldest first; limit 0 means 10", async () => {
      const all = (await listAll(ev)).slice(0, seed.length);
      expect(all).toEqual(seed);
      const first = await ev.listEvents({});
      expect(ids(first.events)).toEqual(ids(seed.slice(0, 10)));
      expect(first.listMetadata?.after).toBe(seed[9].id);
      const zero = await ev.listEvents({ limit: 0 });
      expect(ids(zero.events)).toEqual(ids(seed.slice(0, 10)));
    });

    it("walks pages with after/limit; an empty after ends the walk", async () => {
      const all = await listAll(ev);
      for (const limit of [1, 3, 7, all.length - 1, all.length, 1000]) {
        const walked = await listAll(ev, {}, limit);
        expect(ids(walked), `limit ${limit}`).toEqual(ids(all));
      }
      // The page that ends exactly at the end says so.
      const exact = await ev.listEvents({ limit: all.length });
      expect(exact.events).toHaveLength(all.length);
      expect(exact.listMetadata?.after).toBe("");
      const lastTwo = await ev.listEvents({ after: all[all.length - 3].id, limit: 2 });
      expect(ids(lastTwo.events)).toEqual(ids(all.slice(-2)));
      expect(lastTwo.listMetadata?.after).toBe("");
      // After the newest event: nothing (yet), and no cursor.
      const none = await ev.listEvents({ after: all[all.length - 1].id });
      expect(none.events).toEqual([]);
      expect(none.listMetadata?.after).toBe("");
      // A cursor in the middle continues right after it.
      const mid = await listAll(ev, { after: all[5].id }, 4);
      expect(ids(mid)).toEqual(ids(all.slice(6)));
    });

    it("filters by one or several types", async () => {
      const all = await listAll(ev);
      for (const type of TYPES) {
        const want = all.filter((e) => e.type === type);
        expect(want.length, `the seed has ${type}`).toBeGreaterThan(0);
        expect(ids(await listAll(ev, { types: [type] }, 2)), type).toEqual(ids(want));
      }
      const several = ["group.created", "group.member_removed"];
      expect(ids(await listAll(ev, { types: several }, 3))).toEqual(
        ids(all.filter((e) => several.includes(e.type))),
      );
      expect(ids(await listAll(ev, { types: ["group.deleted", "group.deleted"] }))).toEqual(
        ids(all.filter((e) => e.type === "group.deleted")),
      );
    });

    it("filters by organization_id, alone and with types, across pages", async () => {
      const all = await listAll(ev);
      for (const org of [orgA, orgB]) {
        expect(ids(await listAll(ev, { organizationId: org }, 4))).toEqual(
          ids(all.filter((e) => e.organizationId === org)),
        );
      }
      const both = await listAll(
        ev,
        { organizationId: orgB, types: ["group.member_added", "group.updated"] },
        2,
      );
      expect(ids(both)).toEqual(
        ids(
          all.filter(
            (e) =>
              e.organizationId === orgB &&
              (e.type === "group.member_added" || e.type === "group.updated"),
          ),
        ),
      );
      expect(both.length).toBeGreaterThan(2);
      // An organization with no events.
      expect(await listAll(ev, { organizationId: orgQuiet })).toEqual([]);
      // A cursor is a position in the list it came from: another organization's event is
      // foreign to a list of orgA's (SPEC §4). One of an excluded type is not foreign.
      const bEvent = all.find((e) => e.organizationId === orgB)!;
      await expectInvalid(ev.listEvents({ organizationId: orgA, after: bEvent.id }), "after");
      const aCreated = all.find((e) => e.organizationId === orgA && e.type === "group.created")!;
      expect(
        ids(
          await listAll(ev, { organizationId: orgA, types: ["group.updated"], after: aCreated.id }),
        ),
      ).toEqual(
        ids(
          all.filter(
            (e) =>
              e.organizationId === orgA &&
              e.type === "group.updated" &&
              e.sequence > aCreated.sequence,
          ),
        ),
      );
    });

    it("filters by range_start (inclusive) and range_end (exclusive)", async () => {
      const all = await listAll(ev);
      const start = ms(all[4].createdAt);
      const end = ms(all[Math.min(all.length - 1, 15)].createdAt);
      expect(end).toBeGreaterThan(start);
      const inRange = (e: Event, s?: number, x?: number) =>
        (s === undefined || ms(e.createdAt) >= s) && (x === undefined || ms(e.createdAt) < x);
      const between = await listAll(
        ev,
        { rangeStart: timestampFromMs(start), rangeEnd: timestampFromMs(end) },
        3,
      );
      expect(ids(between)).toEqual(ids(all.filter((e) => inRange(e, start, end))));
      expect(between.length).toBeGreaterThan(0);
      expect(ids(await listAll(ev, { rangeStart: timestampFromMs(start) }))).toEqual(
        ids(all.filter((e) => inRange(e, start))),
      );
      expect(ids(await listAll(ev, { rangeEnd: timestampFromMs(end) }))).toEqual(
        ids(all.filter((e) => inRange(e, undefined, end))),
      );
      // An empty range is not an error.
      expect(
        await listAll(ev, { rangeStart: timestampFromMs(start), rangeEnd: timestampFromMs(start) }),
      ).toEqual([]);
      // With the other filters.
      expect(
        ids(
          await listAll(ev, {
            organizationId: orgA,
            types: ["group.member_added"],
            rangeStart: timestampFromMs(start),
          }),
        ),
      ).toEqual(
        ids(
          all.filter(
            (e) =>
              e.organizationId === orgA && e.type === "group.member_added" && inRange(e, start),
          ),
        ),
      );
    });

    it("bad input is INVALID_ARGUMENT naming the field", async () => {
      const all = await listAll(ev);
      const list = (req: ListInit) => ev.listEvents(req);
      await expectInvalid(list({ types: ["group.nope"] }), "types[0]");
      await expectInvalid(list({ types: ["group.created", "member_added"] }), "types[1]");
      await expectInvalid(list({ after: "not-an-id" }), "after");
      await expectInvalid(list({ after: `group_${ulid()}` }), "after");
      await expectInvalid(list({ after: `event_${ulid()}` }), "after");
      await expectInvalid(list({ limit: 1001 }), "limit");
      await expectInvalid(list({ limit: -1 }), "limit");
      await expectInvalid(list({ organizationId: "org_nope" }), "organization_id");
      await expectInvalid(
        list({
          rangeStart: timestampFromMs(ms(all[5].createdAt)),
          rangeEnd: timestampFromMs(ms(all[5].createdAt) - 1),
        }),
        "range_end",
      );
      // Every bad field at once.
      const err = await expectError(
        list({ types: ["bad"], after: "bad", limit: 5000 }),
        Code.InvalidArgument,
      );
      expect(new Set(badFields(err))).toEqual(new Set(["types[0]", "after", "limit"]));
      // The maximum is fine.
      expect((await ev.listEvents({ limit: 1000 })).events.length).toBe(all.length);
    });
  });

  describe("StreamEvents", () => {
    it("replays after a cursor, then tails live, without gaps or repeats across the switch", async () => {
      const all = await listAll(ev);
      const cursor = all[Math.floor(all.length / 2)];
      const s = openStream(ev, { after: cursor.id });
      // Writes start at once, racing the replay: the switch happens while they commit.
      await mixedWrites(cl, 6, `switch ${door}`);
      const m1 = await marker();
      await s.through(m1);
      // Then writes while the stream is surely tailing.
      await mixedWrites(cl, 3, `tail ${door}`);
      const m2 = await marker(orgB);
      await s.through(m2);

      const listed = await listAll(ev, { after: cursor.id });
      expect(listed[listed.length - 1].id).toBe(m2);
      expect(ids(s.got)).toEqual(ids(listed));
      expect(s.got).toEqual(listed);
      expectConsecutive(s.got, cursor.sequence);
      expect(s.ended(), `the stream is still open (${String(s.error())})`).toBe(false);
      s.abort();
      await s.done;
    });

    it("without after, starts at now: older events are not sent", async () => {
      const before = await listAll(ev);
      const newest = before[before.length - 1].sequence;
      const s = openStream(ev, {});
      await untilLive(s, (i) =>
        c.groups.createGroup({ organizationId: orgA, name: `probe ${door} ${i}` }),
      );
      await mixedWrites(cl, 2, `now ${door}`);
      const m = await marker();
      await s.through(m);

      const old = new Set(ids(before));
      expect(s.got.filter((e) => old.has(e.id))).toEqual([]);
      expect(s.got[0].sequence).toBeGreaterThan(newest);
      // From its first event on, everything, once, in order.
      const listed = (await listAll(ev, { after: before[before.length - 1].id })).filter(
        (e) => e.sequence >= s.got[0].sequence,
      );
      expect(ids(s.got)).toEqual(ids(listed));
      expectConsecutive(s.got);
      s.abort();
      await s.done;
    });

    it("applies organization_id and types to the replay and the tail", async () => {
      const all = await listAll(ev);
      const cursor = all[2];
      const filter = {
        organizationId: orgA,
        types: ["group.member_added", "group.member_removed"],
      };
      // A second stream, from now, once it is surely following.
      const t2 = openStream(ev, { organizationId: orgB, types: ["group.created"] });
      await untilLive(t2, (i) =>
        c.groups.createGroup({ organizationId: orgB, name: `probe B ${door} ${i}` }),
      );
      const s = openStream(ev, { ...filter, after: cursor.id });
      await mixedWrites(cl, 4, `filtered ${door}`);
      // The last write matches the first stream's filter: when it arrives, all before it has.
      const last = await c.groups.createGroup({ organizationId: orgA, name: "filter marker" });
      await c.groups.addGroupMember({
        organizationId: orgA,
        groupId: last.group!.id,
        organizationMembershipId: mA[3].id,
      });
      await settled();
      const listed = await listAll(ev, { ...filter, after: cursor.id });
      await s.through(listed[listed.length - 1].id);
      expect(ids(s.got)).toEqual(ids(listed));
      for (const e of s.got) {
        expect(e.organizationId).toBe(orgA);
        expect(filter.types).toContain(e.type);
      }
      expectIncreasing(s.got);
      // Replayed and live events both came through the filter.
      expect(s.got.some((e) => e.sequence <= all[all.length - 1].sequence)).toBe(true);
      expect(s.got.some((e) => e.sequence > all[all.length - 1].sequence)).toBe(true);

      // The second stream: only org B's group.created, every one from its first event on.
      const createdInB = (await listAll(ev, { after: all[all.length - 1].id })).filter(
        (e) =>
          e.organizationId === orgB &&
          e.type === "group.created" &&
          e.sequence >= t2.got[0].sequence,
      );
      expect(createdInB.length).toBeGreaterThan(2);
      await t2.through(createdInB[createdInB.length - 1].id);
      for (const e of t2.got) {
        expect(e.organizationId).toBe(orgB);
        expect(e.type).toBe("group.created");
      }
      expect(ids(t2.got)).toEqual(ids(createdInB));
      s.abort();
      t2.abort();
      await Promise.all([s.done, t2.done]);
    });

    it("bad input is INVALID_ARGUMENT naming the field", async () => {
      const first = async (req: StreamInit) => {
        for await (const _ of ev.streamEvents(req)) break;
      };
      await expectInvalid(first({ types: ["group.nope"] }), "types[0]");
      await expectInvalid(first({ after: "nope" }), "after");
      await expectInvalid(first({ after: `event_${ulid()}` }), "after");
      await expectInvalid(first({ organizationId: "org_x" }), "organization_id");
      const bEvent = (await listAll(ev, { organizationId: orgB }))[0];
      await expectInvalid(first({ organizationId: orgA, after: bEvent.id }), "after");
    });

    it("an AbortSignal ends it cleanly, and the server lets go of it", async () => {
      const relay = t.server.relay;
      const baseline = relay.listenerCount("sequenced");
      const s = openStream(ev, { after: seed[seed.length - 1].id });
      await s.atLeast(1);
      // Idle at the tail now.
      s.abort();
      await until("the stream ends after abort", async () => s.ended());
      const err = s.error();
      if (err !== undefined) {
        expect(err).toBeInstanceOf(ConnectError);
        expect(Code[(err as ConnectError).code]).toBe(Code[Code.Canceled]);
      }
      const count = s.got.length;
      await until(
        "the server stops following the aborted stream",
        async () => relay.listenerCount("sequenced") <= baseline,
      );
      // The service is fine, and nothing more reaches the aborted stream.
      await marker();
      expect(s.got.length).toBe(count);
    });

    it("a burst of 200 concurrent adds streams exactly the set ListEvents has", async () => {
      const groups: string[] = [];
      for (let i = 0; i < 5; i++) {
        groups.push(
          (await c.groups.createGroup({ organizationId: orgBurst, name: `burst ${door} ${i}` }))
            .group!.id,
        );
      }
      const cursorEvent = await latestEvent();
      const cursor = cursorEvent.id;
      const s = openStream(ev, { after: cursor });
      const byOrg = openStream(ev, { after: cursor, organizationId: orgBurst });

      const work = groups.flatMap((groupId) => burstMembers.map((m) => ({ groupId, m })));
      expect(work).toHaveLength(200);
      // Interleave the groups, and spread the work over parallel clients of both doors.
      work.sort((x, y) => (x.m.id < y.m.id ? -1 : x.m.id > y.m.id ? 1 : 0));
      const writers = [
        t.clients("grpc"),
        t.clients("connect"),
        cl,
        t.clients("grpc"),
        cl,
        t.clients("connect"),
      ];
      let next = 0;
      await Promise.all(
        writers.map(async (w) => {
          while (next < work.length) {
            const { groupId, m } = work[next++];
            const res = await w.groups.addGroupMember({
              organizationId: orgBurst,
              groupId,
              organizationMembershipId: m.id,
            });
            expect(res.added).toBe(true);
          }
        }),
      );
      await settled();
      const listed = await listAll(ev, { after: cursor });
      expect(listed).toHaveLength(200);
      await s.atLeast(200);
      await byOrg.atLeast(200);
      const m = await marker();
      await s.through(m);

      const streamed = s.got.filter((e) => e.id !== m);
      expect(ids(streamed)).toEqual(ids(listed));
      expect(new Set(ids(streamed)).size).toBe(200);
      expectConsecutive(s.got, cursorEvent.sequence);
      expect(ids(byOrg.got)).toEqual(ids(listed));
      // Each group's events in the order they were recorded.
      for (const groupId of groups) {
        expectIncreasing(streamed.filter((e) => groupOf(e) === groupId));
      }
      s.abort();
      byOrg.abort();
      await Promise.all([s.done, byOrg.done]);
    });
  });
});
