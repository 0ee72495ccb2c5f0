/**
 * Helpers for the tests of events (groups.v1.EventsService and what reaches
 * NATS JetStream): a test server publishing to a stream of its own, fixtures,
 * and reading events back.
 */
import { randomBytes } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { NatsConnection } from "nats";
import { expect } from "vitest";
import { toWorkOSEvent, type WorkOSEvent } from "../../clients/src/events/workos.js";
import type { Event, EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import type { ReaperOptions } from "../../server/src/domain/reaper.js";
import { deleteStream, SHARED_NATS_URL, uniqueStream } from "./nats.js";
import { startTestServer, type Clients, type TestServer } from "./server.js";

const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
/** What an event id looks like. */
export const EVENT_ID = new RegExp(`^event_${ULID}$`);

// ---------------------------------------------------------------------------
// A server publishing to a stream of its own
// ---------------------------------------------------------------------------

export interface EventsServer {
  t: TestServer;
  stream: string;
  subjectPrefix: string;
}

/**
 * A test server relaying (every 50 ms) to the machine's NATS on a stream and
 * subject prefix no other test uses, its reaper running every 200 ms.
 */
export async function startEventsServer(
  env: Record<string, string> = {},
  reaper: Partial<ReaperOptions> = {},
): Promise<EventsServer> {
  const { stream, subjectPrefix } = uniqueStream();
  const t = await startTestServer(
    {
      NATS_URL: SHARED_NATS_URL,
      NATS_STREAM: stream,
      NATS_SUBJECT_PREFIX: subjectPrefix,
      RELAY_POLL_INTERVAL_MS: "50",
      ...env,
    },
    { reaper: { intervalMs: 200, ...reaper } },
  );
  return { t, stream, subjectPrefix };
}

/** Closes the server (and drops its database), then deletes its stream. */
export async function closeEventsServer(
  x: EventsServer | undefined,
  nc: NatsConnection | undefined,
): Promise<void> {
  await x?.t.close();
  if (x && nc) await deleteStream(nc, x.stream);
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

export interface Member {
  id: string;
  userId: string;
}

/** `n` memberships of the organization, with user ids made of `tag`. */
export async function createMembers(
  c: Clients,
  organizationId: string,
  n: number,
  tag: string,
): Promise<Member[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const userId = `user_${tag}_${i}_${randomBytes(3).toString("hex")}`;
      const { organizationMembership } = await c.orgs.createOrganizationMembership({
        organizationId,
        userId,
      });
      return { id: organizationMembership!.id, userId };
    }),
  );
}

// ---------------------------------------------------------------------------
// Reading events
// ---------------------------------------------------------------------------

/** The group an event is about (group events: the group's id; member events: group_id). */
export function groupOf(e: Event): string {
  if (e.data.case === "group") return e.data.value.group!.id;
  if (e.data.case === "member") return e.data.value.groupId;
  throw new Error(`event ${e.id} has no payload`);
}

/** The membership a member event is about. */
export function memberOf(e: Event): string | undefined {
  return e.data.case === "member" ? e.data.value.organizationMembershipId : undefined;
}

/** Every event ListEvents has, oldest first. */
export async function listAllEvents(events: Client<typeof EventsService>): Promise<Event[]> {
  const out: Event[] = [];
  let after = "";
  for (;;) {
    const page = await events.listEvents({ after, limit: 1000 });
    out.push(...page.events);
    after = page.listMetadata?.after ?? "";
    if (after === "" || page.events.length === 0) return out;
  }
}

/** How many messages a stream holds, and its last sequence (0 and 0 before the relay created it). */
export async function streamState(
  nc: NatsConnection,
  stream: string,
): Promise<{ messages: number; lastSeq: number }> {
  const jsm = await nc.jetstreamManager();
  try {
    const info = await jsm.streams.info(stream);
    return { messages: info.state.messages, lastSeq: info.state.last_seq };
  } catch (err) {
    if (/stream not found/i.test(String(err))) return { messages: 0, lastSeq: 0 };
    throw err;
  }
}

/**
 * `toWorkOSEvent(e)`, checked: plain JSON (no bigint, no class instances), the
 * envelope, and the fields of its data that name the group (id, organization,
 * name) or the membership. Returns it, for further checks.
 */
export function expectWorkOSEvent(e: Event): WorkOSEvent {
  const w = toWorkOSEvent(e);
  expect(JSON.parse(JSON.stringify(w))).toEqual(w);
  expect(w).toMatchObject({
    object: "event",
    id: e.id,
    event: e.type,
    created_at: timestampDate(e.createdAt!).toISOString(),
  });
  if (e.data.case === "group") {
    const g = e.data.value.group!;
    expect(w.data).toMatchObject({
      object: "group",
      id: g.id,
      organization_id: g.organizationId,
      name: g.name,
    });
  } else if (e.data.case === "member") {
    const m = e.data.value;
    expect(w.data).toMatchObject({
      group_id: m.groupId,
      organization_membership_id: m.organizationMembershipId,
      organization_id: m.organizationId,
      user_id: m.userId,
    });
  }
  return w;
}
