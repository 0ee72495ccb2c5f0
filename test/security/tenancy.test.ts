/**
 * Tenant isolation (SPEC §6, issue 4 items 3 and 7): a caller limited to
 * organization A — an API key limited to A, and a JWT whose org_id is A —
 * calls EVERY RPC of OrganizationsService, GroupsService and EventsService
 * with organization B's ids and names, on every front door. Expected: no
 * answer reveals or changes anything of B (lists hold only A's objects), and
 * each answer for "B's id" equals the answer for a never-existing id of the
 * same kind (code, ErrorInfo, field violations, message with the ids masked).
 * The method list comes from the generated descriptors: an RPC without a case
 * fails the suite. Then: the same callers succeed with A's own ids, an empty
 * organization_id is the caller's, nothing of B changed in the database, and
 * StreamEvents as A carries A's new events and never B's.
 */
import { randomBytes } from "node:crypto";
import { toJson, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
} from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService, type Event } from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import {
  OrganizationMembershipStatus,
  OrganizationsService,
} from "../../clients/src/gen/groups/v1/organizations_pb.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../../clients/src/gen/google/rpc/error_details_pb.js";
import { expectError, pool } from "../support/assertions.js";
import { startJwksServer, type JwksServer } from "../support/jwks.js";
import { DOORS, startTestServer, type Door, type TestServer } from "../support/server.js";
import { sleep, until } from "../support/wait.js";

const SERVICES: DescService[] = [OrganizationsService, GroupsService, EventsService];
const fullName = (m: DescMethod) => `${m.parent.typeName}.${m.name}`;
const ALL_METHODS = SERVICES.flatMap((s) => s.methods);
const METHOD = new Map(ALL_METHODS.map((m) => [fullName(m), m]));

const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const TYPED_ID = new RegExp(`^(org|om|group|event|key)_${ULID}$`);
const rand = () => randomBytes(4).toString("hex");

let t: TestServer;
let jwks: JwksServer;

// ---------------------------------------------------------------------------
// Fixtures: two organizations with memberships, groups with members, events
// ---------------------------------------------------------------------------

interface Member {
  id: string;
  userId: string;
}

interface Tenant {
  id: string;
  name: string;
  externalId: string;
  m1: Member;
  m2: Member;
  /** The membership of the user who belongs to both organizations. */
  shared: Member;
  /** Members: m1, m2. */
  g1: string;
  g1Name: string;
  g1RequestId: string;
  /** Members: m1. */
  g2: string;
  events: Event[];
}

const SHARED_USER = `user_shared_${rand()}`;
let A: Tenant;
let B: Tenant;

async function seedTenant(tag: string): Promise<Tenant> {
  const c = t.clients("grpc");
  const name = `Organization ${tag} ${rand()}`;
  const externalId = `ext_${tag}_${rand()}`;
  const { organization } = await c.orgs.createOrganization({ name, externalId });
  const orgId = organization!.id;
  const member = async (userId: string): Promise<Member> => {
    const { organizationMembership } = await c.orgs.createOrganizationMembership({
      organizationId: orgId,
      userId,
    });
    return { id: organizationMembership!.id, userId };
  };
  const m1 = await member(`user_${tag}1_${rand()}`);
  const m2 = await member(`user_${tag}2_${rand()}`);
  const shared = await member(SHARED_USER);
  const g1Name = `${tag} one ${rand()}`;
  const g1RequestId = `req_${tag}_${rand()}`;
  const g1 = (
    await c.groups.createGroup({ organizationId: orgId, name: g1Name, requestId: g1RequestId })
  ).group!.id;
  const g2 = (await c.groups.createGroup({ organizationId: orgId, name: `${tag} two ${rand()}` }))
    .group!.id;
  await c.groups.batchAddGroupMembers({
    organizationId: orgId,
    groupId: g1,
    organizationMembershipIds: [m1.id, m2.id],
  });
  await c.groups.addGroupMember({
    organizationId: orgId,
    groupId: g2,
    organizationMembershipId: m1.id,
  });
  // 2 × group.created + 3 × group.member_added, once the relay has sequenced them.
  const events = createClient(EventsService, t.transport("grpc"));
  let seen: Event[] = [];
  await until(`the seed events of ${tag} are sequenced`, async () => {
    seen = (await events.listEvents({ organizationId: orgId, limit: 100 })).events;
    return seen.length === 5;
  });
  return { id: orgId, name, externalId, m1, m2, shared, g1, g1Name, g1RequestId, g2, events: seen };
}

/** Every id and unique name of B: none may appear in an answer to an A-limited caller. */
function bSecrets(): string[] {
  return [
    B.id,
    B.name,
    B.externalId,
    B.m1.id,
    B.m2.id,
    B.shared.id,
    B.m1.userId,
    B.m2.userId,
    B.g1,
    B.g2,
    ...B.events.map((e) => e.id),
  ];
}

// ---------------------------------------------------------------------------
// Calling any RPC generically, and what came back
// ---------------------------------------------------------------------------

interface Caller {
  kind: "api-key" | "jwt";
  token: string;
}

type Outcome =
  | { ok: true; json: unknown }
  | {
      ok: false;
      code: string;
      message: string;
      detailTypes: string[];
      errorInfo: { reason: string; domain: string; metadata: Record<string, string> }[];
      fieldViolations: { field: string; description: string }[];
    };

type AnyClient = Record<string, (req: unknown, opts?: CallOptions) => unknown>;
const clientCache = new Map<string, AnyClient>();

function clientOf(door: Door, token: string, service: DescService): AnyClient {
  const key = `${door} ${token} ${service.typeName}`;
  let c = clientCache.get(key);
  if (!c) {
    c = createClient(service, t.transport(door, { token })) as unknown as AnyClient;
    clientCache.set(key, c);
  }
  return c;
}

function errorOutcome(err: unknown): Outcome {
  if (!(err instanceof ConnectError)) throw err;
  return {
    ok: false,
    code: Code[err.code],
    message: err.rawMessage,
    detailTypes: err.details.map((d) => ("desc" in d ? d.desc.typeName : d.type)).sort(),
    errorInfo: err.findDetails(ErrorInfoSchema).map((i) => ({
      reason: i.reason,
      domain: i.domain,
      metadata: { ...i.metadata },
    })),
    fieldViolations: err
      .findDetails(BadRequestSchema)
      .flatMap((b) =>
        b.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
      ),
  };
}

/**
 * Calls `method` with `req`. A server stream is read for `windowMs` (then
 * cancelled): its outcome is the messages seen, or the error it ended with.
 */
async function invoke(
  door: Door,
  token: string,
  method: DescMethod,
  req: unknown,
  windowMs = 1000,
): Promise<Outcome> {
  const client = clientOf(door, token, method.parent);
  try {
    if (method.methodKind === "unary") {
      const res = await (client[method.localName](req) as Promise<never>);
      return { ok: true, json: toJson(method.output, res) };
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), windowMs);
    const seen: unknown[] = [];
    try {
      const stream = client[method.localName](req, {
        signal: abort.signal,
      }) as AsyncIterable<never>;
      for await (const msg of stream) seen.push(toJson(method.output, msg));
    } catch (err) {
      if (!(abort.signal.aborted && err instanceof ConnectError && err.code === Code.Canceled))
        throw err;
    } finally {
      clearTimeout(timer);
    }
    return { ok: true, json: seen };
  } catch (err) {
    return errorOutcome(err);
  }
}

const stringify = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));

/** Fields that differ between any two writes, whoever makes them. */
const VOLATILE = new Set(["createdAt", "updatedAt", "etag"]);

/** The outcome as text with the given ids replaced by their names, so twins compare equal. */
function masked(outcome: Outcome, ids: Record<string, string>): string {
  let text = JSON.stringify(outcome, (k, x: unknown) =>
    VOLATILE.has(k) ? undefined : typeof x === "bigint" ? x.toString() : x,
  );
  const entries = Object.entries(ids).sort((a, b) => b[1].length - a[1].length);
  for (const [name, value] of entries) text = text.split(value).join(`<${name}>`);
  return text;
}

/** An id of the same kind (and format) that never existed. */
function neverExisting(value: string): string {
  const typed = TYPED_ID.exec(value);
  if (typed) return `${typed[1]}_${ulid()}`;
  return `nx_${rand()}_${value.length}`;
}

// ---------------------------------------------------------------------------
// The sweep cases: for every RPC, requests naming B's things
// ---------------------------------------------------------------------------

interface SweepCase {
  what: string;
  /** B's ids/names used by the request, by name; the twin call gets never-existing ones. */
  b: Record<string, string>;
  request: (ids: Record<string, string>) => Record<string, unknown>;
  /**
   * "error": only an error is acceptable; "list", "no-op": a success is
   * acceptable when it reveals and changes nothing of B (and passes `check`).
   */
  allow?: "error" | "list" | "no-op";
  /** The error code required (cases without a twin). */
  code?: Code;
  check?: (json: Record<string, unknown>) => void;
  /** Writes to A when it succeeds: run after the read-only cases, one at a time. */
  writesA?: boolean;
}

const INACTIVE = OrganizationMembershipStatus.INACTIVE;

/** Every item of a list answer belongs to A. */
const onlyA =
  (field: string, idsMustBe?: () => string[]) =>
  (json: Record<string, unknown>): void => {
    const items = (json[field] ?? []) as Record<string, unknown>[];
    for (const item of items) {
      const org = field === "organizations" ? item.id : item.organizationId;
      expect(org, `${field} item`).toBe(A.id);
    }
    if (idsMustBe) expect(items.map((i) => i.id).sort()).toEqual(idsMustBe().sort());
  };

const eventsOnlyA = (json: unknown): void => {
  const events = Array.isArray(json)
    ? (json as { event: Record<string, unknown> }[]).map((m) => m.event)
    : (((json as Record<string, unknown>).events ?? []) as Record<string, unknown>[]);
  for (const e of events) expect(e.organizationId, `event ${String(e.id)}`).toBe(A.id);
};

function sweepCases(): Record<string, SweepCase[]> {
  return {
    // --- OrganizationsService --------------------------------------------
    "groups.v1.OrganizationsService.CreateOrganization": [
      {
        what: "create an organization (deployment-wide only)",
        b: {},
        request: () => ({ name: `Intruder ${rand()}` }),
        code: Code.PermissionDenied,
      },
      {
        what: "create an organization with B's external_id",
        b: { ext: B.externalId },
        request: ({ ext }) => ({ name: "Intruder", externalId: ext }),
      },
    ],
    "groups.v1.OrganizationsService.GetOrganization": [
      { what: "get B", b: { org: B.id }, request: ({ org }) => ({ organizationId: org }) },
    ],
    "groups.v1.OrganizationsService.ListOrganizations": [
      {
        what: "list organizations",
        b: {},
        request: () => ({ limit: 1000 }),
        allow: "list",
        check: onlyA("organizations", () => [A.id]),
      },
      {
        what: "list organizations after B",
        b: { org: B.id },
        request: ({ org }) => ({ after: org }),
        allow: "list",
        check: onlyA("organizations"),
      },
      {
        what: "list organizations before B",
        b: { org: B.id },
        request: ({ org }) => ({ before: org }),
        allow: "list",
        check: onlyA("organizations"),
      },
    ],
    "groups.v1.OrganizationsService.UpdateOrganization": [
      {
        what: "rename B",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, name: "Pwned" }),
      },
      {
        what: "change B's external_id",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, externalId: `pwned_${rand()}` }),
      },
      {
        what: "take B's external_id for A",
        b: { ext: B.externalId },
        request: ({ ext }) => ({ organizationId: A.id, externalId: ext }),
        allow: "list",
        check: (json) => expect((json.organization as Record<string, unknown>).id).toBe(A.id),
        writesA: true,
      },
    ],
    "groups.v1.OrganizationsService.DeleteOrganization": [
      { what: "delete B", b: { org: B.id }, request: ({ org }) => ({ organizationId: org }) },
    ],
    "groups.v1.OrganizationsService.CreateOrganizationMembership": [
      {
        what: "add a user to B",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, userId: `intruder_${rand()}` }),
      },
      {
        what: "add B's user to B again",
        b: { org: B.id, user: B.m1.userId },
        request: ({ org, user }) => ({ organizationId: org, userId: user }),
      },
    ],
    "groups.v1.OrganizationsService.GetOrganizationMembership": [
      {
        what: "get B's membership",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationMembershipId: om }),
      },
      {
        what: "get B's membership of the shared user",
        b: { om: B.shared.id },
        request: ({ om }) => ({ organizationMembershipId: om }),
      },
    ],
    "groups.v1.OrganizationsService.ListOrganizationMemberships": [
      {
        what: "list B's memberships",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org }),
      },
      {
        what: "list B's memberships of the shared user",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, userId: SHARED_USER }),
      },
      {
        what: "list the shared user's memberships (user_id only)",
        b: {},
        request: () => ({ userId: SHARED_USER, limit: 1000 }),
        allow: "list",
        check: onlyA("organizationMemberships", () => [A.shared.id]),
      },
      {
        what: "list a B-only user's memberships (user_id only)",
        b: { user: B.m1.userId },
        request: ({ user }) => ({ userId: user }),
        allow: "list",
        check: onlyA("organizationMemberships", () => []),
      },
      {
        what: "list the shared user's memberships after B's",
        b: { om: B.shared.id },
        request: ({ om }) => ({ userId: SHARED_USER, after: om }),
        allow: "list",
        check: onlyA("organizationMemberships"),
      },
      {
        what: "list A's memberships after B's",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationId: A.id, after: om }),
        allow: "list",
        check: onlyA("organizationMemberships"),
      },
    ],
    "groups.v1.OrganizationsService.UpdateOrganizationMembership": [
      {
        what: "deactivate B's membership",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationMembershipId: om, status: INACTIVE }),
      },
    ],
    "groups.v1.OrganizationsService.DeleteOrganizationMembership": [
      {
        what: "delete B's membership",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationMembershipId: om }),
      },
      {
        what: "delete B's membership of the shared user",
        b: { om: B.shared.id },
        request: ({ om }) => ({ organizationMembershipId: om }),
      },
    ],

    // --- GroupsService ----------------------------------------------------
    "groups.v1.GroupsService.CreateGroup": [
      {
        what: "create a group in B",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, name: "Intruders" }),
      },
      {
        what: "create a group in A replaying B's request_id",
        b: {},
        request: () => ({ organizationId: "", name: B.g1Name, requestId: B.g1RequestId }),
        allow: "list",
        check: (json) => {
          const g = json.group as Record<string, unknown>;
          expect(g.organizationId).toBe(A.id);
          expect(g.id).not.toBe(B.g1);
        },
        writesA: true,
      },
    ],
    "groups.v1.GroupsService.GetGroup": [
      {
        what: "get B's group in B",
        b: { org: B.id, group: B.g1 },
        request: ({ org, group }) => ({ organizationId: org, groupId: group }),
      },
      {
        what: "get B's group as A's",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationId: A.id, groupId: group }),
      },
      {
        what: "get B's group, organization left empty",
        b: { group: B.g1 },
        request: ({ group }) => ({ groupId: group }),
      },
    ],
    "groups.v1.GroupsService.ListGroups": [
      {
        what: "list B's groups",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org }),
      },
      {
        what: "list groups, organization left empty",
        b: {},
        request: () => ({ limit: 1000 }),
        allow: "list",
        check: onlyA("groups"),
      },
      {
        what: "list A's groups after B's group",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationId: A.id, after: group }),
        allow: "list",
        check: onlyA("groups"),
      },
      {
        what: "list groups before B's group",
        b: { group: B.g2 },
        request: ({ group }) => ({ before: group }),
        allow: "list",
        check: onlyA("groups"),
      },
    ],
    "groups.v1.GroupsService.UpdateGroup": [
      {
        what: "rename B's group in B",
        b: { org: B.id, group: B.g1 },
        request: ({ org, group }) => ({ organizationId: org, groupId: group, name: "Pwned" }),
      },
      {
        what: "rename B's group as A's",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationId: A.id, groupId: group, name: "Pwned" }),
      },
      {
        what: "describe B's group, organization left empty",
        b: { group: B.g2 },
        request: ({ group }) => ({ groupId: group, description: "pwned" }),
      },
    ],
    "groups.v1.GroupsService.DeleteGroup": [
      {
        what: "delete B's group in B",
        b: { org: B.id, group: B.g1 },
        request: ({ org, group }) => ({ organizationId: org, groupId: group }),
      },
      {
        what: "delete B's group as A's",
        b: { group: B.g2 },
        request: ({ group }) => ({ organizationId: A.id, groupId: group }),
      },
    ],
    "groups.v1.GroupsService.AddGroupMember": [
      {
        what: "add B's member to B's group in B",
        b: { org: B.id, group: B.g2, om: B.m2.id },
        request: ({ org, group, om }) => ({
          organizationId: org,
          groupId: group,
          organizationMembershipId: om,
        }),
      },
      {
        what: "add A's member to B's group",
        b: { group: B.g2 },
        request: ({ group }) => ({
          organizationId: A.id,
          groupId: group,
          organizationMembershipId: A.m2.id,
        }),
      },
      {
        what: "add B's member to A's group",
        b: { om: B.m2.id },
        request: ({ om }) => ({
          organizationId: A.id,
          groupId: A.g2,
          organizationMembershipId: om,
        }),
      },
      {
        what: "add B's member to B's group as A's",
        b: { group: B.g2, om: B.m2.id },
        request: ({ group, om }) => ({
          organizationId: A.id,
          groupId: group,
          organizationMembershipId: om,
        }),
      },
    ],
    "groups.v1.GroupsService.RemoveGroupMember": [
      {
        what: "remove B's member from B's group in B",
        b: { org: B.id, group: B.g1, om: B.m1.id },
        request: ({ org, group, om }) => ({
          organizationId: org,
          groupId: group,
          organizationMembershipId: om,
        }),
      },
      ...[false, true].flatMap((allowMissing): SweepCase[] => [
        {
          what: `remove B's member from B's group as A's (allow_missing ${allowMissing})`,
          b: { group: B.g1, om: B.m1.id },
          request: ({ group, om }) => ({
            organizationId: A.id,
            groupId: group,
            organizationMembershipId: om,
            allowMissing,
          }),
        },
        {
          what: `remove B's member from A's group (allow_missing ${allowMissing})`,
          b: { om: B.m1.id },
          request: ({ om }) => ({
            organizationId: A.id,
            groupId: A.g1,
            organizationMembershipId: om,
            allowMissing,
          }),
          // With allow_missing, a membership A cannot see is "not in the
          // group": OK with nothing removed, exactly as for one that never
          // existed (the twin), and the answer holds only A's group.
          ...(allowMissing && {
            allow: "no-op" as const,
            check: (json: Record<string, unknown>) => {
              expect(json.removed ?? false, "removed").toBe(false);
              expect((json.group as Record<string, unknown>).organizationId).toBe(A.id);
            },
          }),
        },
        {
          what: `remove A's member from B's group (allow_missing ${allowMissing})`,
          b: { group: B.g1 },
          request: ({ group }) => ({
            organizationId: "",
            groupId: group,
            organizationMembershipId: A.m1.id,
            allowMissing,
          }),
        },
      ]),
    ],
    "groups.v1.GroupsService.ListGroupMembers": [
      {
        what: "list B's group's members in B",
        b: { org: B.id, group: B.g1 },
        request: ({ org, group }) => ({ organizationId: org, groupId: group }),
      },
      {
        what: "list B's group's members as A's",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationId: A.id, groupId: group }),
      },
      {
        what: "list A's group's members after B's membership",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationId: A.id, groupId: A.g1, after: om }),
        allow: "list",
        check: onlyA("organizationMemberships"),
      },
    ],
    "groups.v1.GroupsService.ListGroupsForOrganizationMembership": [
      {
        what: "list B's membership's groups",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationMembershipId: om }),
      },
      {
        what: "list A's membership's groups after B's group",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationMembershipId: A.m1.id, after: group }),
        allow: "list",
        check: onlyA("groups"),
      },
    ],
    "groups.v1.GroupsService.BatchAddGroupMembers": [
      {
        what: "batch-add B's member to B's group in B",
        b: { org: B.id, group: B.g2, om: B.m2.id },
        request: ({ org, group, om }) => ({
          organizationId: org,
          groupId: group,
          organizationMembershipIds: [om],
        }),
      },
      {
        what: "batch-add A's member to B's group",
        b: { group: B.g2 },
        request: ({ group }) => ({
          organizationId: A.id,
          groupId: group,
          organizationMembershipIds: [A.m2.id],
        }),
      },
      {
        what: "batch-add B's member to A's group",
        b: { om: B.m2.id },
        request: ({ om }) => ({
          organizationId: A.id,
          groupId: A.g2,
          organizationMembershipIds: [om],
        }),
      },
      {
        what: "batch-add A's and B's members to A's group",
        b: { om: B.m2.id },
        request: ({ om }) => ({
          organizationId: "",
          groupId: A.g2,
          organizationMembershipIds: [A.m2.id, om],
        }),
      },
    ],
    "groups.v1.GroupsService.BatchRemoveGroupMembers": [
      {
        what: "batch-remove B's member from B's group in B",
        b: { org: B.id, group: B.g1, om: B.m1.id },
        request: ({ org, group, om }) => ({
          organizationId: org,
          groupId: group,
          organizationMembershipIds: [om],
        }),
      },
      {
        what: "batch-remove B's member from B's group as A's",
        b: { group: B.g1, om: B.m1.id },
        request: ({ group, om }) => ({
          organizationId: A.id,
          groupId: group,
          organizationMembershipIds: [om],
        }),
      },
      {
        what: "batch-remove B's member from A's group",
        b: { om: B.m1.id },
        request: ({ om }) => ({
          organizationId: A.id,
          groupId: A.g1,
          organizationMembershipIds: [om],
        }),
      },
      {
        what: "batch-remove A's and B's members from A's group",
        b: { om: B.m2.id },
        request: ({ om }) => ({
          organizationId: A.id,
          groupId: A.g1,
          organizationMembershipIds: [A.m1.id, om],
        }),
      },
    ],
    "groups.v1.GroupsService.CheckGroupMembership": [
      {
        what: "check B's membership in B's group",
        b: { om: B.m1.id, group: B.g1 },
        request: ({ om, group }) => ({ organizationMembershipId: om, groupIds: [group] }),
      },
      {
        what: "check B's membership in A's group",
        b: { om: B.m1.id },
        request: ({ om }) => ({ organizationMembershipId: om, groupIds: [A.g1] }),
      },
      {
        what: "check A's membership in A's and B's groups",
        b: { group: B.g1 },
        request: ({ group }) => ({ organizationMembershipId: A.m1.id, groupIds: [A.g1, group] }),
        allow: "list",
        check: (json) => expect(json.groupIds).toEqual([A.g1]),
      },
    ],

    // --- EventsService ----------------------------------------------------
    "groups.v1.EventsService.ListEvents": [
      {
        what: "list B's events",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org }),
      },
      {
        what: "list B's events of one type",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org, types: ["group.created"] }),
      },
      {
        what: "list events, organization left empty",
        b: {},
        request: () => ({ limit: 1000 }),
        allow: "list",
        check: (json) => {
          eventsOnlyA(json);
          const ids = ((json.events ?? []) as { id: string }[]).map((e) => e.id);
          expect(ids).toEqual(expect.arrayContaining(A.events.map((e) => e.id)));
        },
      },
      {
        what: "list events after B's event",
        b: { event: B.events[0].id },
        request: ({ event }) => ({ after: event }),
        allow: "list",
        check: eventsOnlyA,
      },
    ],
    "groups.v1.EventsService.StreamEvents": [
      {
        what: "stream B's events",
        b: { org: B.id },
        request: ({ org }) => ({ organizationId: org }),
      },
      {
        what: "stream events after B's event",
        b: { event: B.events[0].id },
        request: ({ event }) => ({ after: event }),
        allow: "list",
        check: eventsOnlyA,
      },
      {
        what: "stream events after A's first event",
        b: {},
        request: () => ({ after: A.events[0].id }),
        allow: "list",
        check: (json) => {
          eventsOnlyA(json);
          // The replay starts with A's seed events (A may have more by now, from earlier cases).
          const ids = (json as unknown as { event: { id: string } }[]).map((m) => m.event.id);
          expect(ids.slice(0, A.events.length - 1)).toEqual(A.events.slice(1).map((e) => e.id));
        },
      },
    ],
  };
}

// ---------------------------------------------------------------------------
// Own-organization cases: the same callers succeed with A's ids
// ---------------------------------------------------------------------------

interface Own {
  orgs: Client<typeof OrganizationsService>;
  groups: Client<typeof GroupsService>;
  events: Client<typeof EventsService>;
  /** A caller of the same kind limited to another (fresh) organization. */
  callerFor(organizationId: string): Promise<string>;
  door: Door;
  label: string;
}

const OWN_CASES: Record<string, (c: Own) => Promise<void>> = {
  "groups.v1.OrganizationsService.CreateOrganization": async (c) => {
    // Only deployment-wide callers create organizations: the limited caller's own case is a refusal.
    await expectError(
      c.orgs.createOrganization({ name: "Own" }),
      Code.PermissionDenied,
      "ORGANIZATION_LIMITED_CREDENTIALS",
    );
  },
  "groups.v1.OrganizationsService.GetOrganization": async (c) => {
    expect((await c.orgs.getOrganization({ organizationId: A.id })).organization?.id).toBe(A.id);
    expect((await c.orgs.getOrganization({})).organization?.id).toBe(A.id);
  },
  "groups.v1.OrganizationsService.ListOrganizations": async (c) => {
    const res = await c.orgs.listOrganizations({});
    expect(res.organizations.map((o) => o.id)).toEqual([A.id]);
  },
  "groups.v1.OrganizationsService.UpdateOrganization": async (c) => {
    const name = `Organization A (${c.label})`;
    const res = await c.orgs.updateOrganization({ organizationId: A.id, name });
    expect(res.organization).toMatchObject({ id: A.id, name });
  },
  "groups.v1.OrganizationsService.DeleteOrganization": async (c) => {
    const admin = t.clients("grpc");
    const { organization } = await admin.orgs.createOrganization({ name: "Doomed" });
    const token = await c.callerFor(organization!.id);
    const own = createClient(OrganizationsService, t.transport(c.door, { token }));
    await own.deleteOrganization({ organizationId: organization!.id });
    await expectError(
      admin.orgs.getOrganization({ organizationId: organization!.id }),
      Code.NotFound,
    );
  },
  "groups.v1.OrganizationsService.CreateOrganizationMembership": async (c) => {
    const userId = `own_${rand()}`;
    const res = await c.orgs.createOrganizationMembership({ organizationId: "", userId });
    expect(res.organizationMembership).toMatchObject({ organizationId: A.id, userId });
    const explicit = await c.orgs.createOrganizationMembership({
      organizationId: A.id,
      userId: `own_${rand()}`,
    });
    expect(explicit.organizationMembership?.organizationId).toBe(A.id);
  },
  "groups.v1.OrganizationsService.GetOrganizationMembership": async (c) => {
    const res = await c.orgs.getOrganizationMembership({ organizationMembershipId: A.m1.id });
    expect(res.organizationMembership).toMatchObject({ id: A.m1.id, organizationId: A.id });
  },
  "groups.v1.OrganizationsService.ListOrganizationMemberships": async (c) => {
    const byUser = await c.orgs.listOrganizationMemberships({ userId: SHARED_USER });
    expect(byUser.organizationMemberships.map((m) => m.id)).toEqual([A.shared.id]);
    const byOrg = await c.orgs.listOrganizationMemberships({ organizationId: A.id, limit: 1000 });
    expect(byOrg.organizationMemberships.map((m) => m.id)).toEqual(
      expect.arrayContaining([A.m1.id, A.m2.id, A.shared.id]),
    );
  },
  "groups.v1.OrganizationsService.UpdateOrganizationMembership": async (c) => {
    const m = (await c.orgs.createOrganizationMembership({ userId: `own_${rand()}` }))
      .organizationMembership!;
    const res = await c.orgs.updateOrganizationMembership({
      organizationMembershipId: m.id,
      status: INACTIVE,
    });
    expect(res.organizationMembership?.status).toBe(INACTIVE);
  },
  "groups.v1.OrganizationsService.DeleteOrganizationMembership": async (c) => {
    const m = (await c.orgs.createOrganizationMembership({ userId: `own_${rand()}` }))
      .organizationMembership!;
    await c.orgs.deleteOrganizationMembership({ organizationMembershipId: m.id });
    await expectError(
      c.orgs.getOrganizationMembership({ organizationMembershipId: m.id }),
      Code.NotFound,
    );
  },
  "groups.v1.GroupsService.CreateGroup": async (c) => {
    const res = await c.groups.createGroup({ organizationId: "", name: `own ${rand()}` });
    expect(res.group?.organizationId).toBe(A.id);
  },
  "groups.v1.GroupsService.GetGroup": async (c) => {
    expect((await c.groups.getGroup({ organizationId: A.id, groupId: A.g1 })).group?.id).toBe(A.g1);
    expect((await c.groups.getGroup({ groupId: A.g1 })).group?.organizationId).toBe(A.id);
  },
  "groups.v1.GroupsService.ListGroups": async (c) => {
    const res = await c.groups.listGroups({ limit: 1000 });
    expect(res.groups.map((g) => g.id)).toEqual(expect.arrayContaining([A.g1, A.g2]));
  },
  "groups.v1.GroupsService.UpdateGroup": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    const res = await c.groups.updateGroup({ groupId: g.id, name: "renamed", etag: g.etag });
    expect(res.group).toMatchObject({ id: g.id, name: "renamed", organizationId: A.id });
  },
  "groups.v1.GroupsService.DeleteGroup": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    await c.groups.deleteGroup({ organizationId: A.id, groupId: g.id });
    await expectError(c.groups.getGroup({ groupId: g.id }), Code.NotFound, "GROUP_NOT_FOUND");
  },
  "groups.v1.GroupsService.AddGroupMember": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    const res = await c.groups.addGroupMember({ groupId: g.id, organizationMembershipId: A.m1.id });
    expect(res.added).toBe(true);
    expect(res.group?.memberCount).toBe(1n);
  },
  "groups.v1.GroupsService.RemoveGroupMember": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    await c.groups.addGroupMember({ groupId: g.id, organizationMembershipId: A.m1.id });
    const res = await c.groups.removeGroupMember({
      organizationId: A.id,
      groupId: g.id,
      organizationMembershipId: A.m1.id,
    });
    expect(res.removed).toBe(true);
  },
  "groups.v1.GroupsService.ListGroupMembers": async (c) => {
    const res = await c.groups.listGroupMembers({ groupId: A.g1 });
    expect(res.organizationMemberships.map((m) => m.id).sort()).toEqual([A.m1.id, A.m2.id].sort());
  },
  "groups.v1.GroupsService.ListGroupsForOrganizationMembership": async (c) => {
    const res = await c.groups.listGroupsForOrganizationMembership({
      organizationMembershipId: A.m2.id,
    });
    // A.m2 is in A.g1 from the start (and in groups the other own cases made since).
    const ids = res.groups.map((g) => g.id);
    expect(ids).toContain(A.g1);
    expect(ids).not.toContain(A.g2);
    expect(new Set(res.groups.map((g) => g.organizationId))).toEqual(new Set([A.id]));
  },
  "groups.v1.GroupsService.BatchAddGroupMembers": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    const res = await c.groups.batchAddGroupMembers({
      groupId: g.id,
      organizationMembershipIds: [A.m1.id, A.m2.id],
    });
    expect(res.results.map((r) => r.added)).toEqual([true, true]);
  },
  "groups.v1.GroupsService.BatchRemoveGroupMembers": async (c) => {
    const g = (await c.groups.createGroup({ name: `own ${rand()}` })).group!;
    await c.groups.batchAddGroupMembers({ groupId: g.id, organizationMembershipIds: [A.m1.id] });
    const res = await c.groups.batchRemoveGroupMembers({
      organizationId: A.id,
      groupId: g.id,
      organizationMembershipIds: [A.m1.id, A.m2.id],
    });
    expect(res.results.map((r) => r.removed)).toEqual([true, false]);
  },
  "groups.v1.GroupsService.CheckGroupMembership": async (c) => {
    const res = await c.groups.checkGroupMembership({
      organizationMembershipId: A.m2.id,
      groupIds: [A.g1, A.g2],
    });
    expect(res.groupIds).toEqual([A.g1]);
  },
  "groups.v1.EventsService.ListEvents": async (c) => {
    const res = await c.events.listEvents({ limit: 1000 });
    expect(res.events.map((e) => e.id)).toEqual(expect.arrayContaining(A.events.map((e) => e.id)));
    expect(new Set(res.events.map((e) => e.organizationId))).toEqual(new Set([A.id]));
    const typed = await c.events.listEvents({
      organizationId: A.id,
      types: ["group.member_added"],
    });
    expect(typed.events.length).toBeGreaterThanOrEqual(3);
  },
  "groups.v1.EventsService.StreamEvents": async (c) => {
    const abort = new AbortController();
    const seen: Event[] = [];
    try {
      for await (const m of c.events.streamEvents(
        { after: A.events[0].id },
        { signal: abort.signal },
      )) {
        seen.push(m.event!);
        if (seen.length === A.events.length - 1) abort.abort();
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    expect(seen.map((e) => e.id)).toEqual(A.events.slice(1).map((e) => e.id));
  },
};

// ---------------------------------------------------------------------------
// What B looks like in the database
// ---------------------------------------------------------------------------

async function rows(sql: string, params: unknown[]): Promise<RowDataPacket[]> {
  const [r] = await t.db.sql.query<RowDataPacket[]>(sql, params);
  return r;
}

async function snapshotB(): Promise<string> {
  const snapshot = {
    organization: await rows("SELECT * FROM organizations WHERE id = ?", [B.id]),
    memberships: await rows(
      "SELECT * FROM organization_memberships WHERE organization_id = ? ORDER BY id",
      [B.id],
    ),
    groups: await rows("SELECT * FROM org_groups WHERE organization_id = ? ORDER BY id", [B.id]),
    links: await rows(
      `SELECT gm.* FROM group_memberships gm
         LEFT JOIN org_groups g ON g.id = gm.group_id
         LEFT JOIN organization_memberships m ON m.id = gm.organization_membership_id
        WHERE g.organization_id = ? OR m.organization_id = ?
        ORDER BY gm.group_id, gm.organization_membership_id`,
      [B.id, B.id],
    ),
    events: await rows(
      "SELECT id, type, group_id FROM events WHERE organization_id = ? ORDER BY outbox_seq",
      [B.id],
    ),
    deletionJobs: await rows(
      "SELECT * FROM deletion_jobs WHERE target_id IN (?) ORDER BY target_id",
      [[B.id, B.g1, B.g2]],
    ),
  };
  return stringify(snapshot);
}

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

const callers: Caller[] = [];
let bBefore: string;

beforeAll(async () => {
  jwks = await startJwksServer();
  t = await startTestServer({ ...jwks.env, RELAY_POLL_INTERVAL_MS: "50" });
  A = await seedTenant("A");
  B = await seedTenant("B");
  const key = await t.server.apiKeys.create({ name: "tenant-a", organizationId: A.id });
  callers.push({ kind: "api-key", token: key.secret });
  callers.push({
    kind: "jwt",
    token: await jwks.token({
      sub: "alice",
      org_id: A.id,
      permissions: ["groups:read", "groups:write"],
    }),
  });
  bBefore = await snapshotB();
});

afterAll(async () => {
  await t?.close();
  await jwks?.close();
});

async function callerLike(kind: Caller["kind"], organizationId: string): Promise<string> {
  if (kind === "api-key") {
    return (await t.server.apiKeys.create({ name: `own-${rand()}`, organizationId })).secret;
  }
  return jwks.token({ sub: `u-${rand()}`, org_id: organizationId, permissions: "groups:write" });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe("the sweep covers the whole API", () => {
  it("has a cross-tenant case and an own-organization case for every RPC of the descriptors", () => {
    const names = ALL_METHODS.map(fullName);
    expect(names.length).toBeGreaterThanOrEqual(24);
    const cases = sweepCases();
    const withoutSweep = names.filter((n) => !(cases[n]?.length > 0));
    const withoutOwn = names.filter((n) => !OWN_CASES[n]);
    expect(withoutSweep, "RPCs without a cross-tenant case").toEqual([]);
    expect(withoutOwn, "RPCs without an own-organization case").toEqual([]);
    // No case for an RPC that does not exist (a typo would silently cover nothing).
    expect(Object.keys(cases).filter((n) => !METHOD.has(n))).toEqual([]);
    expect(Object.keys(OWN_CASES).filter((n) => !METHOD.has(n))).toEqual([]);
  });
});

describe.each(DOORS)("an A-limited caller over %s", (door) => {
  it.each(["api-key", "jwt"] as const)(
    "%s: B's ids and names → 0 successes revealing or changing B; B's answers equal never-existing ids'",
    async (kind) => {
      const caller = callers.find((c) => c.kind === kind)!;
      const secrets = bSecrets();
      const problems: string[] = [];
      const entries = Object.entries(sweepCases()).flatMap(([name, list]) =>
        list.map((c) => ({ method: METHOD.get(name)!, c })),
      );

      const runCase = async ({ method, c }: { method: DescMethod; c: SweepCase }) => {
        const label = `${method.name}: ${c.what}`;
        const twinIds = Object.fromEntries(
          Object.entries(c.b).map(([k, v]) => [k, neverExisting(v)]),
        );
        const got = await invoke(door, caller.token, method, c.request(c.b));
        const twin =
          Object.keys(c.b).length > 0
            ? await invoke(door, caller.token, method, c.request(twinIds))
            : undefined;

        if (got.ok && (c.allow ?? "error") === "error") {
          problems.push(`${label}: SUCCEEDED ${stringify(got.json)}`);
        }
        if (got.ok && c.check) {
          try {
            c.check(got.json as Record<string, unknown>);
          } catch (err) {
            problems.push(`${label}: ${(err as Error).message}`);
          }
        }
        // Nothing of B beyond what the request itself named may come back.
        const shown = masked(got, c.b);
        const leaked = secrets.filter((s) => shown.includes(s));
        if (leaked.length > 0) problems.push(`${label}: reveals ${leaked.join(", ")} in ${shown}`);
        if (twin) {
          const a = masked(got, c.b);
          const b = masked(twin, twinIds);
          if (a !== b) {
            problems.push(`${label}: B's id answers ${a}\n    a never-existing id answers ${b}`);
          }
        } else if (c.code !== undefined) {
          if (got.ok || got.code !== Code[c.code]) {
            problems.push(`${label}: expected ${Code[c.code]}, got ${stringify(got)}`);
          }
        }
      };

      // Read-only answers first (in parallel), then the cases that may write to A, one at a time.
      await pool(
        entries.filter((e) => !e.c.writesA),
        8,
        runCase,
      );
      for (const e of entries.filter((x) => x.c.writesA)) await runCase(e);

      expect(problems, problems.join("\n")).toEqual([]);
    },
  );

  it.each(["api-key", "jwt"] as const)(
    "%s: A's own ids succeed on every RPC; an empty organization_id is A",
    async (kind) => {
      const caller = callers.find((c) => c.kind === kind)!;
      const own: Own = {
        orgs: createClient(OrganizationsService, t.transport(door, { token: caller.token })),
        groups: createClient(GroupsService, t.transport(door, { token: caller.token })),
        events: createClient(EventsService, t.transport(door, { token: caller.token })),
        callerFor: (org) => callerLike(kind, org),
        door,
        label: `${door} ${kind}`,
      };
      const failures: string[] = [];
      for (const [name, run] of Object.entries(OWN_CASES)) {
        try {
          await run(own);
        } catch (err) {
          failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      expect(failures, failures.join("\n")).toEqual([]);
    },
  );
});

describe("after the sweep", () => {
  it("nothing of B changed in the database (rows, names, member counts, links, events)", async () => {
    // The cross-tenant writes were answered at once; give stray work a moment to show anyway.
    await sleep(300);
    expect(await snapshotB()).toBe(bBefore);
    const [{ n }] = await rows(
      `SELECT COUNT(*) AS n FROM group_memberships gm
         JOIN org_groups g ON g.id = gm.group_id
         JOIN organization_memberships m ON m.id = gm.organization_membership_id
        WHERE g.organization_id <> m.organization_id`,
      [],
    );
    expect(Number(n), "group links across organizations").toBe(0);
    const [{ orgs }] = await rows(
      "SELECT COUNT(*) AS orgs FROM organizations WHERE name LIKE 'Intruder%'",
      [],
    );
    expect(Number(orgs)).toBe(0);
  });
});

describe.each(DOORS)("StreamEvents as the A-limited caller over %s", (door) => {
  it.each(["api-key", "jwt"] as const)(
    "%s: carries A's new events and never B's, written while it streams",
    async (kind) => {
      const caller = callers.find((c) => c.kind === kind)!;
      const admin = t.clients("grpc");
      const adminEvents = createClient(EventsService, t.transport("grpc"));
      // Start from the newest event so far: everything written below is replayed or tailed.
      let cursor = "";
      for (let after = ""; ;) {
        const page = await adminEvents.listEvents({ after, limit: 1000 });
        if (page.events.length > 0) cursor = page.events.at(-1)!.id;
        after = page.listMetadata?.after ?? "";
        if (after === "") break;
      }

      const follow = (token: string | undefined, label: string) => {
        const abort = new AbortController();
        const seen: Event[] = [];
        const client = createClient(EventsService, t.transport(door, { token }));
        const done = (async () => {
          try {
            for await (const m of client.streamEvents({ after: cursor }, { signal: abort.signal }))
              seen.push(m.event!);
          } catch (err) {
            if (!abort.signal.aborted) throw new Error(`${label} stream failed: ${String(err)}`);
          }
        })();
        return { seen, stop: () => abort.abort(), done };
      };
      const asA = follow(caller.token, "A's");
      const everyone = follow(undefined, "the deployment-wide");
      try {
        // B first, then A: events are streamed in sequence order, so by the time A's
        // last event arrives any B event would have arrived before it.
        const bGroup = (
          await admin.groups.createGroup({ organizationId: B.id, name: `B live ${rand()}` })
        ).group!;
        await admin.groups.addGroupMember({
          organizationId: B.id,
          groupId: bGroup.id,
          organizationMembershipId: B.m1.id,
        });
        const own = createClient(GroupsService, t.transport(door, { token: caller.token }));
        const aGroupId = (await own.createGroup({ name: `A live ${rand()}` })).group!.id;
        await own.addGroupMember({ groupId: aGroupId, organizationMembershipId: A.m1.id });

        const isAdd = (e: Event, g: string) =>
          e.type === "group.member_added" && e.data.case === "member" && e.data.value.groupId === g;
        await until(
          "the deployment-wide stream sees both organizations' new events",
          async () =>
            everyone.seen.some((e) => isAdd(e, aGroupId)) &&
            everyone.seen.some((e) => isAdd(e, bGroup.id)),
        );
        await until("A's stream sees A's new member event", async () =>
          asA.seen.some((e) => isAdd(e, aGroupId)),
        );

        const bIds = everyone.seen.filter((e) => e.organizationId === B.id).map((e) => e.id);
        expect(bIds.length, "B events written during the stream").toBeGreaterThanOrEqual(2);
        expect(asA.seen.map((e) => e.organizationId).filter((o) => o !== A.id)).toEqual([]);
        expect(asA.seen.map((e) => e.id)).toEqual(
          everyone.seen
            .filter((e) => e.organizationId === A.id)
            .map((e) => e.id)
            .slice(0, asA.seen.length),
        );
        expect(asA.seen.map((e) => e.type)).toEqual(
          expect.arrayContaining(["group.created", "group.member_added"]),
        );
      } finally {
        asA.stop();
        everyone.stop();
        await Promise.all([asA.done, everyone.done]);
      }
    },
  );
});
