/**
 * Hostile input (issue 4, SPEC §3 errors, §6): property-based fuzzing with
 * fast-check.
 *
 * a. Every RPC of GroupsService, OrganizationsService and EventsService (taken
 *    from the descriptors, so a new RPC is fuzzed without touching this file),
 *    with every request field drawn from real ids of seeded objects (and of
 *    objects the fuzz itself created), ids of the wrong kind or of another
 *    organization, unknown and malformed ids, hostile text, boundary numbers,
 *    unknown enum values, long repeated fields and random cursors, through the
 *    generated clients on every front door. Every error is a ConnectError that
 *    is neither INTERNAL nor UNKNOWN, carries a google.rpc.ErrorInfo reason,
 *    an INVALID_ARGUMENT names fields of the request in a google.rpc.BadRequest,
 *    a failed call writes nothing, and no call hangs (15 s).
 * b. No partial writes: afterwards the stored state is consistent with itself
 *    and with the outbox (member counts, tenancy of links, one group.created
 *    per group, member events accounting for every link, group versions).
 * c. Raw bodies: random and mutated bytes/JSON on Connect (unary, GET and
 *    streaming, with odd compression and timeouts), malformed gRPC-Web frames,
 *    and raw HTTP/2 gRPC frames with lying length prefixes and hostile
 *    grpc-timeout/grpc-encoding on both ports never map to INTERNAL/UNKNOWN
 *    (nor to an HTTP 5xx other than UNAVAILABLE); a table of minimal repros of
 *    what the fuzz found; the server still answers afterwards.
 *
 * FUZZ_SEED=<n> replays a run; FUZZ_VERBOSE=1 prints the outcome counts.
 */
import { gzipSync } from "node:zlib";
import {
  create,
  toBinary,
  toJson,
  ScalarType,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import {
  reasonOfConnectJson,
  statusDetailsOf,
  type ConnectErrorJson,
} from "../support/assertions.js";
import { endStreamError, envelope, frames, trailerValue } from "../support/bodies.js";
import { RawH2 } from "../support/raw-h2.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { until } from "../support/wait.js";

// ---------------------------------------------------------------------------
// What is fuzzed: every method of the three services, from the descriptors
// ---------------------------------------------------------------------------

const SERVICES: DescService[] = [GroupsService, OrganizationsService, EventsService];
const METHODS = SERVICES.flatMap((s) => s.methods);
const UNARY = METHODS.filter((m) => m.methodKind === "unary");
const STREAMING = METHODS.filter((m) => m.methodKind === "server_streaming");
const path = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

/** The front doors the generated clients go through (Connect twice: JSON and binary). */
const FUZZ_DOORS = ["grpc", "connect-json", "connect-proto", "grpc-web"] as const;
type FuzzDoor = (typeof FUZZ_DOORS)[number];
/** Runs per unary method per door (23 methods today): ~460 calls each on grpc and Connect JSON. */
const RUNS: Record<FuzzDoor, number> = {
  grpc: 20,
  "connect-json": 20,
  "connect-proto": 8,
  "grpc-web": 6,
};
const STREAM_RUNS: Record<FuzzDoor, number> = {
  grpc: 12,
  "connect-json": 12,
  "connect-proto": 5,
  "grpc-web": 5,
};
const RAW_RUNS = 120;
/** A call still unanswered after this long is a hang (generous: CI machines are shared). */
const CALL_LIMIT_MS = 15_000;

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const fcParams = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns,
  seed: SEED,
  // Shrinking replays calls against the live server: bound it.
  interruptAfterTimeLimit: 40_000,
  markInterruptAsFailure: false,
});

const BAD_CODES = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

// ---------------------------------------------------------------------------
// Objects the fuzz can name: seeded, then whatever successful calls return
// ---------------------------------------------------------------------------

type Kind = "org" | "om" | "group" | "event";
const KINDS: Kind[] = ["org", "om", "group", "event"];
const PREFIX: Record<Kind, string> = { org: "org", om: "om", group: "group", event: "event" };

interface Known {
  id: string;
  org: string;
  /** Deleted by a successful call: still named by the fuzz, as an id that no longer exists. */
  dead: boolean;
}
const known: Record<Kind, Known[]> = { org: [], om: [], group: [], event: [] };
const knownIds = new Set<string>();
/** Other strings worth replaying: etags, user ids, external ids. */
const knownTokens: string[] = [];

function remember(kind: Kind, id: string, org: string) {
  if (knownIds.has(id)) return;
  knownIds.add(id);
  known[kind].push({ id, org, dead: false });
}

/** After a successful Delete*: the object (for an organization, everything in it) is gone. */
function forget(id: string) {
  for (const kind of KINDS) {
    for (const k of known[kind]) if (k.id === id || (kind !== "org" && k.org === id)) k.dead = true;
  }
}

const kindOfId = (id: string): Kind | undefined =>
  KINDS.find((k) => id.startsWith(`${PREFIX[k]}_`) && id.length === PREFIX[k].length + 27);

/** Collects the ids (and etags, user ids, external ids) a response carries. */
function harvest(value: unknown, depth = 0): void {
  if (depth > 6 || value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    for (const v of value.slice(0, 50)) harvest(v, depth + 1);
    return;
  }
  const o = value as Record<string, unknown>;
  if (typeof o.id === "string") {
    const kind = kindOfId(o.id);
    const org =
      kind === "org" ? o.id : typeof o.organizationId === "string" ? o.organizationId : "";
    if (kind && org) remember(kind, o.id, org);
  }
  for (const key of ["etag", "userId", "externalId"]) {
    const v = o[key];
    if (typeof v === "string" && v !== "" && knownTokens.length < 500) knownTokens.push(v);
  }
  for (const [key, v] of Object.entries(o)) if (key !== "$typeName") harvest(v, depth + 1);
}

// ---------------------------------------------------------------------------
// Generated values, resolved against the live pools when the call runs
// ---------------------------------------------------------------------------

/** A reference to a known object, resolved at call time (the pools grow during the run). */
interface Ref {
  $ref: Kind;
  pick: number;
  /** Pick among the objects of the request's anchor organization. */
  sameOrg: boolean;
  pre: string;
  post: string;
  lower: boolean;
}
interface TokenRef {
  $token: number;
}
/** A request as generated: field values, some of them references. */
interface Spec {
  anchor: number;
  fields: Record<string, unknown>;
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** A well-formed ULID that names nothing, from a number (deterministic, so it shrinks). */
function fakeUlid(n: number): string {
  let s = "";
  let x = Math.abs(Math.floor(n)) + 1;
  for (let i = 0; i < 16; i++) {
    s = CROCKFORD[x % 32] + s;
    x = Math.floor(x / 32);
  }
  return `01ZZZZZZZZ${s}`;
}
const unknownId = (kind: Kind, n: number) => `${PREFIX[kind]}_${fakeUlid(n)}`;

const EVENT_TYPES = [
  "group.created",
  "group.updated",
  "group.deleted",
  "group.member_added",
  "group.member_removed",
];

const SPECIAL_STRINGS = [
  "",
  " ",
  "  \t\n ",
  "\u3000",
  "\u0000",
  "a\u0000b",
  "Finance\u0000",
  "\u0007bell",
  "\u0085",
  "\u007F",
  "\u202Eevil",
  "\u2066isolated\u2069",
  "\u200F\u200E",
  "مرحبا بالعالم",
  "שלום",
  "\uFEFFbom",
  "\u200B",
  "e\u0301\u0301\u0301",
  "👩‍👩‍👧‍👦",
  "\uD800",
  "\uDFFF",
  "a\uDC00b",
  "\uD83D",
  "' OR '1'='1' --",
  "%",
  "_",
  "\\",
  '"}',
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "${jndi:ldap://x}",
  "null",
  "0",
  "-1",
  "Engineering",
  "ORDER_ASC",
  ...EVENT_TYPES,
  "group.*",
];

/** Characters that long strings are made of: each probes a different length rule. */
const LONG_UNITS = ["a", "é", "😀", " ", "\u0000", "\u202E", "ع", "\uD800", "x\u0301", "\t"];

const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SPECIAL_STRINGS) },
  { weight: 3, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        unit: fc.constantFrom(...LONG_UNITS),
        n: fc.oneof(
          fc.constantFrom(64, 65, 100, 101, 128, 129, 150, 151, 256, 257, 1000, 1001, 4096),
          fc.integer({ min: 0, max: 4096 }),
        ),
        pad: fc.constantFrom("", " ", "\u0000", "\u202E"),
      })
      .map(({ unit, n, pad }) => pad + unit.repeat(n) + pad),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 200, maxLength: 3000 }) },
);

const refArb = (kind: fc.Arbitrary<Kind>, sameOrg: boolean): fc.Arbitrary<Ref> =>
  fc.record({
    $ref: kind,
    pick: fc.nat(),
    sameOrg: fc.constant(sameOrg),
    pre: fc.constant(""),
    post: fc.constant(""),
    lower: fc.constant(false),
  });

/** A real id spoiled a little: padded, NUL-terminated, lower-cased. */
const spoiledRefArb = (kind: fc.Arbitrary<Kind>): fc.Arbitrary<Ref> =>
  fc.record({
    $ref: kind,
    pick: fc.nat(),
    sameOrg: fc.boolean(),
    pre: fc.constantFrom("", " ", "\u202E", "x"),
    post: fc.constantFrom("", " ", "\u0000", "0", "\n"),
    lower: fc.boolean(),
  });

const malformedId = (kind: Kind): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(
      `${PREFIX[kind]}_`,
      `${PREFIX[kind]}_123`,
      `${PREFIX[kind]}_${"Z".repeat(26)}`, // timestamp overflow: first character above 7
      `${PREFIX[kind]}_${"0".repeat(25)}U`,
      `${PREFIX[kind]}_${"0".repeat(27)}`,
      `${PREFIX[kind].toUpperCase()}_${"0".repeat(26)}`,
      `${PREFIX[kind]}-${"0".repeat(26)}`,
      "0".repeat(26),
    ),
    fc.nat().map((n) => unknownId(kind, n).toLowerCase()),
    fc.string({ unit: "grapheme-ascii", maxLength: 30 }).map((s) => `${PREFIX[kind]}_${s}`),
  );

const otherKind = (kind: Kind) => fc.constantFrom(...KINDS.filter((k) => k !== kind));

/** A value for a string field that names an object of `kind`. */
function idString(kind: Kind): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: refArb(fc.constant(kind), true) },
    { weight: 3, arbitrary: refArb(fc.constant(kind), false) },
    { weight: 2, arbitrary: refArb(otherKind(kind), false) },
    { weight: 1, arbitrary: spoiledRefArb(fc.constant(kind)) },
    { weight: 2, arbitrary: fc.nat().map((n) => unknownId(kind, n)) },
    { weight: 2, arbitrary: malformedId(kind) },
    { weight: 1, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: hostileString },
  );
}

/** A value for a free-text string field (names, user ids, etags, types …). */
const freeString: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 24 }) },
  { weight: 5, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constant("") },
  { weight: 1, arbitrary: fc.nat().map((n): TokenRef => ({ $token: n })) },
  { weight: 1, arbitrary: refArb(fc.constantFrom(...KINDS), false) },
);

/** The kind of object a string field names, from its name (and, for cursors, from the list the method returns). */
function kindOfField(method: DescMethod, field: DescField): Kind | undefined {
  const name = field.name.replace(/_ids?$/, "_id");
  if (name === "organization_membership_id") return "om";
  if (name === "organization_id") return "org";
  if (name === "group_id") return "group";
  if (name === "event_id") return "event";
  if (name === "before" || name === "after") {
    const list = method.output.fields.find(
      (f) => f.fieldKind === "list" && f.listKind === "message",
    );
    const typeName = list?.fieldKind === "list" ? list.message?.typeName : undefined;
    const byType: Record<string, Kind> = {
      "groups.v1.Group": "group",
      "groups.v1.OrganizationMembership": "om",
      "groups.v1.Organization": "org",
      "groups.v1.Event": "event",
    };
    return (typeName ? byType[typeName] : undefined) ?? "event";
  }
  return undefined;
}

const INT32_EDGES = [0, 1, -1, 9, 10, 100, 101, 999, 1000, 1001, 2 ** 31 - 1, -(2 ** 31)];

function scalarArb(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return freeString;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(
        fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e308),
        fc.double({ noNaN: false }),
      );
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constantFrom(...INT32_EDGES), fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(
        fc.constantFrom(0, 1, 10, 1000, 1001, 2 ** 31 - 1, 2 ** 32 - 1),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      );
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(
        fc.constantFrom(0n, 1n, -1n, 2n ** 31n - 1n, 2n ** 63n - 1n, -(2n ** 63n), 253402300800n),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      );
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(
        fc.constantFrom(0n, 1n, 2n ** 63n, 2n ** 64n - 1n),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      );
  }
}

/** A repeated string field: a few odd entries, or a long list (~1,100) around the batch limits. */
function stringListArb(kind: Kind | undefined): fc.Arbitrary<unknown[]> {
  const elem = kind ? idString(kind) : freeString;
  const long = fc
    .record({
      n: fc.oneof(
        fc.constantFrom(99, 100, 101, 999, 1000, 1001, 1100),
        fc.integer({ min: 0, max: 1100 }),
      ),
      realEvery: fc.integer({ min: 0, max: 50 }),
      dupAt: fc.option(fc.nat(), { nil: undefined }),
      odd: fc.option(fc.tuple(fc.nat(), elem), { nil: undefined }),
      base: fc.nat(),
    })
    .map(({ n, realEvery, dupAt, odd, base }) => {
      const k = kind ?? "om";
      const out: unknown[] = Array.from({ length: n }, (_, i) =>
        realEvery > 0 && i % realEvery === 0
          ? { $ref: k, pick: base + i, sameOrg: true, pre: "", post: "", lower: false }
          : unknownId(k, base + i),
      );
      if (n > 1 && dupAt !== undefined) out[dupAt % n] = out[(dupAt + 1) % n];
      if (n > 0 && odd) out[odd[0] % n] = odd[1];
      return out;
    });
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(elem, { maxLength: 6 }) },
    { weight: 1, arbitrary: long },
  );
}

function fieldArb(method: DescMethod, field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar": {
      const kind = field.scalar === ScalarType.STRING ? kindOfField(method, field) : undefined;
      return kind ? idString(kind) : scalarArb(field.scalar);
    }
    case "enum":
      return fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...field.enum.values.map((v) => v.number)) },
        { weight: 1, arbitrary: fc.constantFrom(-1, 3, 7, 99, 2 ** 31 - 1, -(2 ** 31)) },
      );
    case "message":
      return depth > 2 ? fc.constant(undefined) : messageArb(method, field.message, depth + 1);
    case "list":
      if (field.listKind === "scalar" && field.scalar === ScalarType.STRING) {
        return stringListArb(kindOfField(method, field));
      }
      if (field.listKind === "scalar") return fc.array(scalarArb(field.scalar), { maxLength: 8 });
      if (field.listKind === "enum") {
        return fc.array(fc.integer({ min: -2, max: 8 }), { maxLength: 8 });
      }
      return depth > 2
        ? fc.constant([])
        : fc.array(messageArb(method, field.message, depth + 1), { maxLength: 3 });
    case "map":
      return fc.constant(undefined);
  }
}

/** Any subset of the message's fields, each with a fuzzed value (absent = default). */
function messageArb(
  method: DescMethod,
  desc: DescMessage,
  depth = 0,
): fc.Arbitrary<Record<string, unknown>> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  // Members of real oneofs would need {case, value}; no request has one today.
  for (const field of desc.fields) {
    if (field.oneof === undefined) shape[field.localName] = fieldArb(method, field, depth);
  }
  return fc.record(shape, { requiredKeys: [] });
}

const ALNUM = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"];
const word = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...ALNUM), minLength: min, maxLength: max });
const sameOrgRef = (kind: Kind, pick: number): Ref => ({
  $ref: kind,
  pick,
  sameOrg: true,
  pre: "",
  post: "",
  lower: false,
});

/** A value the service should accept for this field (ids of the anchor organization, sane text and numbers). */
function plausibleFieldArb(method: DescMethod, field: DescField): fc.Arbitrary<unknown> {
  const kind = kindOfField(method, field);
  switch (field.fieldKind) {
    case "scalar":
      if (kind) {
        return fc.oneof(
          { weight: 8, arbitrary: fc.nat().map((n) => sameOrgRef(kind, n)) },
          { weight: 1, arbitrary: refArb(fc.constant(kind), false) },
          { weight: 1, arbitrary: fc.nat().map((n) => unknownId(kind, n)) },
          // An empty cursor or filter is the common case.
          {
            weight: field.name === "before" || field.name === "after" ? 20 : 0,
            arbitrary: fc.constant(""),
          },
        );
      }
      if (field.scalar === ScalarType.STRING) {
        if (field.name === "etag") {
          return fc.oneof(
            fc.constant(""),
            fc.nat().map((n): TokenRef => ({ $token: n })),
          );
        }
        if (field.name === "request_id") return fc.oneof(fc.constant(""), word(1, 12));
        if (field.name.endsWith("_id")) return word(1, 20);
        return fc.tuple(word(1, 12), word(0, 12)).map(([a, b]) => (b ? `${a} ${b}` : a));
      }
      if (field.scalar === ScalarType.INT32) {
        return fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(1000));
      }
      return scalarArb(field.scalar);
    case "enum": {
      // UNSPECIFIED (0) is often "the default", sometimes refused (a membership's new status).
      const numbers = field.enum.values.map((v) => v.number);
      const set = numbers.filter((n) => n !== 0);
      return set.length
        ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...set) }, fc.constant(0))
        : fc.constantFrom(...numbers);
    }
    case "message":
      if (field.message.typeName === "google.protobuf.Timestamp") {
        return fc.option(
          fc.integer({ min: -86_400 * 3, max: 86_400 }).map((d) => ({
            seconds: BigInt(Math.floor(Date.now() / 1000) + d),
            nanos: 0,
          })),
          { nil: undefined },
        );
      }
      return fc.constant(undefined);
    case "list":
      if (field.listKind === "scalar" && field.scalar === ScalarType.STRING) {
        if (kind) {
          return fc
            .tuple(fc.integer({ min: 1, max: 4 }), fc.nat())
            .map(([n, base]) => Array.from({ length: n }, (_, i) => sameOrgRef(kind, base + i)));
        }
        if (field.name === "types") {
          return fc.uniqueArray(fc.constantFrom(...EVENT_TYPES), { maxLength: 3 });
        }
        return fc.array(word(1, 10), { maxLength: 3 });
      }
      return fc.constant([]);
    case "map":
      return fc.constant(undefined);
  }
}

/**
 * A request: either every field hostile, or a plausible request (which often
 * succeeds and reaches the database) with at most one field spoiled.
 */
function specArb(method: DescMethod): fc.Arbitrary<Spec> {
  const fields = method.input.fields.filter((f) => f.oneof === undefined);
  const plausible: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fields) plausible[f.localName] = plausibleFieldArb(method, f);
  const spoiled = fc.record({
    base: fc.record(plausible, { requiredKeys: [] }),
    spoil: fc.option(
      fc
        .constantFrom(...fields)
        .chain((f) => fieldArb(method, f, 0).map((v) => [f.localName, v] as const)),
      { nil: undefined, freq: 2 },
    ),
  });
  return (
    fc
      .record({
        anchor: fc.nat(),
        fields: fc.oneof(
          { weight: 1, arbitrary: messageArb(method, method.input) },
          {
            weight: 2,
            arbitrary: spoiled.map(({ base, spoil }) =>
              spoil ? { ...base, [spoil[0]]: spoil[1] } : base,
            ),
          },
        ),
      })
      // Counterexamples print compactly (long lists are elided).
      .map((spec) => Object.assign(spec, { [fc.toStringMethod]: () => `Spec(${show(spec)})` }))
  );
}

/** The organization a request's same-organization references point into: a live one, with groups if possible. */
function anchorOrg(n: number): string {
  const live = known.org.filter((o) => !o.dead);
  const rich = live.filter((o) => known.group.some((g) => !g.dead && g.org === o.id));
  const from = rich.length ? rich : live.length ? live : known.org;
  return from.length ? from[n % from.length].id : "";
}

/** Replaces references by ids of the pools as they are now. */
function resolve(spec: Spec): Record<string, unknown> {
  const anchor = anchorOrg(spec.anchor);
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v instanceof Uint8Array || v === null || typeof v !== "object") return v;
    const o = v as Record<string, unknown>;
    if ("$token" in o) {
      const n = o.$token as number;
      return knownTokens.length ? knownTokens[n % knownTokens.length] : "";
    }
    if ("$ref" in o) {
      const r = o as unknown as Ref;
      const all = known[r.$ref];
      const scoped = r.sameOrg
        ? all.filter((k) => !k.dead && (r.$ref === "org" ? k.id === anchor : k.org === anchor))
        : all;
      const from = scoped.length ? scoped : all;
      const id = from.length ? from[r.pick % from.length].id : unknownId(r.$ref, r.pick);
      return r.pre + (r.lower ? id.toLowerCase() : id) + r.post;
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x)]));
  };
  return walk(spec.fields) as Record<string, unknown>;
}

/** A readable, bounded rendering of a request for failure messages. */
function show(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return `bytes(${v.length})`;
    if (typeof v === "string" && v.length > 80)
      return `${JSON.stringify(v.slice(0, 40))}…(${v.length})`;
    if (Array.isArray(v) && v.length > 12) return [...v.slice(0, 6), `…(${v.length} entries)`];
    return v;
  });
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

// ---------------------------------------------------------------------------
// The server, its doors and its stored state
// ---------------------------------------------------------------------------

let t: TestServer;
const outcomes = new Map<string, number>();
const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

/** The shared test transport; "connect-json" is its "connect" door. */
function fuzzTransport(door: FuzzDoor): Transport {
  return t.transport(door === "connect-json" ? "connect" : door);
}

type AnyClient = Record<
  string,
  (req: unknown, opts?: { signal?: AbortSignal }) => Promise<unknown> & AsyncIterable<unknown>
>;
const clientCache = new Map<string, AnyClient>();
function clientFor(door: FuzzDoor, service: DescService): AnyClient {
  const key = `${door} ${service.typeName}`;
  let c = clientCache.get(key);
  if (!c) {
    c = createClient(service, fuzzTransport(door)) as unknown as AnyClient;
    clientCache.set(key, c);
  }
  return c;
}

const sql = () => t.db.sql;
async function rows(query: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await sql().query<RowDataPacket[]>(query, params);
  return r;
}

/**
 * High-water marks of everything a call can write. Only the reaper changes
 * rows behind the fuzz's back, and it only deletes rows and writes SYSTEM
 * events, so after a failed call no mark may have risen and no API event may
 * have been recorded.
 */
async function writeMarks(): Promise<Record<string, unknown>> {
  const [r] = await rows(`SELECT
    (SELECT MAX(id) FROM organizations) AS org_id,
    (SELECT MAX(updated_at) FROM organizations) AS org_updated,
    (SELECT MAX(deleted_at) FROM organizations) AS org_deleted,
    (SELECT MAX(id) FROM organization_memberships) AS om_id,
    (SELECT MAX(updated_at) FROM organization_memberships) AS om_updated,
    (SELECT MAX(id) FROM org_groups) AS group_id,
    (SELECT MAX(updated_at) FROM org_groups) AS group_updated,
    (SELECT MAX(deleted_at) FROM org_groups) AS group_deleted,
    (SELECT MAX(created_at) FROM group_memberships) AS link_created,
    (SELECT MAX(created_at) FROM idempotency_keys) AS key_created,
    (SELECT MAX(requested_at) FROM deletion_jobs) AS deletion_requested,
    (SELECT COALESCE(MAX(outbox_seq), 0) FROM events) AS outbox_seq`);
  return { ...r };
}

const comparable = (v: unknown) =>
  v === null || v === undefined ? null : v instanceof Date ? v.getTime() : String(v);

async function expectNothingWritten(before: Record<string, unknown>, what: string) {
  const after = await writeMarks();
  const risen = Object.keys(before).filter((k) => {
    if (k === "outbox_seq") return false;
    const [b, a] = [comparable(before[k]), comparable(after[k])];
    return a !== null && (b === null || a > b);
  });
  expect(risen, `a failed call wrote: ${what}`).toEqual([]);
  const [{ n }] = await rows(
    "SELECT COUNT(*) AS n FROM events WHERE outbox_seq > ? AND cause = 'api'",
    [before.outbox_seq],
  );
  expect(Number(n), `a failed call recorded API events: ${what}`).toBe(0);
}

/** Every field a BadRequest may name for this request: its fields, with [i] for lists. */
function expectViolationsNameFields(method: DescMethod, fields: string[], what: string) {
  expect(fields.length, `INVALID_ARGUMENT without field violations: ${what}`).toBeGreaterThan(0);
  const names = new Set(method.input.fields.map((f) => f.name));
  for (const f of fields) {
    const base = f.replace(/\[\d+\]$/, "").split(".")[0];
    expect(
      names.has(base),
      `BadRequest names "${f}", not a field of ${method.input.typeName}: ${what}`,
    ).toBe(true);
  }
}

/** The checks every failed call must pass. */
function expectWellFormedError(method: DescMethod, err: unknown, what: string): ConnectError {
  expect(err, `not a ConnectError: ${String(err)} — ${what}`).toBeInstanceOf(ConnectError);
  const e = err as ConnectError;
  const d = errorDetails(e);
  const line = `${d.codeName} ${d.reason} "${d.message}" — ${what}`;
  expect(BAD_CODES.has(e.code), line).toBe(false);
  expect(d.reason, `no google.rpc.ErrorInfo reason: ${line}`).toMatch(/^[A-Z][A-Z0-9_]*$/);
  if (e.code === Code.InvalidArgument) {
    expectViolationsNameFields(
      method,
      d.fieldViolations.map((v) => v.field),
      line,
    );
  }
  return e;
}

/** JSON cannot carry some values (e.g. Timestamps past year 9999): those go only through binary doors. */
function jsonEncodable(method: DescMethod, req: Record<string, unknown>): boolean {
  try {
    toJson(method.input, create(method.input, req as never));
    return true;
  } catch {
    return false;
  }
}

async function fuzzUnary(door: FuzzDoor, method: DescMethod, spec: Spec): Promise<void> {
  const req = resolve(spec);
  if (door === "connect-json" && !jsonEncodable(method, req)) return;
  const what = `${door} ${path(method)} ${show(req)}`;
  const before = await writeMarks();
  const client = clientFor(door, method.parent);
  let res: unknown;
  const abort = new AbortController();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    abort.abort();
  }, CALL_LIMIT_MS);
  try {
    res = await client[method.localName](req, { signal: abort.signal });
  } catch (err) {
    expect(hung, `no answer within ${CALL_LIMIT_MS} ms: ${what}`).toBe(false);
    const e = expectWellFormedError(method, err, what);
    count(`${method.name} ${Code[e.code]}`);
    await expectNothingWritten(before, what);
    return;
  } finally {
    clearTimeout(timer);
  }
  count(`${method.name} OK`);
  harvest(res);
  if (method.name.startsWith("Delete")) {
    // The object deleted is the one the last id field names (DeleteGroup: group_id).
    const idField = [...method.input.fields].reverse().find((f) => kindOfField(method, f));
    const id = idField && req[idField.localName];
    if (typeof id === "string") forget(id);
  }
}

async function fuzzStream(door: FuzzDoor, method: DescMethod, spec: Spec): Promise<void> {
  const req = resolve(spec);
  if (door === "connect-json" && !jsonEncodable(method, req)) return;
  const what = `${door} ${path(method)} ${show(req)}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 200);
  const client = clientFor(door, method.parent);
  try {
    for await (const msg of client[method.localName](req, { signal: abort.signal })) {
      harvest(msg);
      count(`${method.name} message`);
      break; // leaving the loop cancels the call
    }
    count(`${method.name} OK`);
  } catch (err) {
    if (abort.signal.aborted && ConnectError.from(err).code === Code.Canceled) {
      count(`${method.name} tailing`);
    } else {
      const e = expectWellFormedError(method, err, what);
      count(`${method.name} ${Code[e.code]}`);
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

// ---------------------------------------------------------------------------
// Seed: organization A (members, groups, links), B and C, and their events
// ---------------------------------------------------------------------------

/**
 * Seeds three organizations: A with 6 memberships and 4 groups (members
 * linked), B with 3 and 2, C with 1 and 1; remembers their ids and events.
 * Run again before each door, since the fuzz deletes what it can name.
 */
async function seedWorld(tag: string): Promise<void> {
  const c = t.clients("grpc");
  const org = async (name: string, externalId = "") =>
    (await c.orgs.createOrganization({ name, externalId })).organization!;
  const member = async (organizationId: string, userId: string) =>
    (await c.orgs.createOrganizationMembership({ organizationId, userId })).organizationMembership!;
  const group = async (organizationId: string, name: string) =>
    (await c.groups.createGroup({ organizationId, name, description: `${name} team` })).group!;

  const orgs = [
    await org(`Org A ${tag}`, `ext-a-${tag}`),
    await org(`Org B ${tag}`, `ext-b-${tag}`),
    await org(`Org C ${tag}`),
  ];
  for (const [i, o] of orgs.entries()) {
    harvest(o);
    const members = [];
    for (let m = 0; m < [6, 3, 1][i]; m++) {
      const mm = await member(o.id, `user-${i}-${m}`);
      harvest(mm);
      members.push(mm.id);
    }
    for (let g = 0; g < [4, 2, 1][i]; g++) {
      const gg = await group(o.id, ["Engineering", "Finance", "Sales", "Ops"][g]);
      harvest(gg);
      harvest(
        await c.groups.batchAddGroupMembers({
          organizationId: o.id,
          groupId: gg.id,
          organizationMembershipIds: members.filter((_, k) => (k + g) % 2 === 0),
        }),
      );
    }
  }
  // Event ids (ListEvents serves sequenced events only; take them from the outbox).
  for (const r of await rows(
    "SELECT id, organization_id FROM events ORDER BY outbox_seq DESC LIMIT 40",
  )) {
    remember("event", r.id as string, r.organization_id as string);
  }
}

beforeAll(async () => {
  t = await startTestServer({}, { reaper: { intervalMs: 100 } });
  await seedWorld("seed");
});

afterAll(async () => {
  if (process.env.FUZZ_VERBOSE) {
    console.log(
      [...outcomes.entries()]
        .sort()
        .map(([k, n]) => `${k}: ${n}`)
        .join("\n"),
    );
  }
  h2.close();
  await t?.close();
});

// ---------------------------------------------------------------------------
// a. Every request's fields, through the generated clients
// ---------------------------------------------------------------------------

describe("a. fuzzed request fields through the generated clients", () => {
  it("covers every RPC of the three services", () => {
    expect(UNARY.length + STREAMING.length).toBe(METHODS.length);
    expect(UNARY.map((m) => m.name)).toContain("BatchAddGroupMembers");
    expect(STREAMING.map((m) => m.name)).toEqual(["StreamEvents"]);
  });

  describe.each(FUZZ_DOORS)("over %s", (door) => {
    beforeAll(() => seedWorld(door));

    it.each(UNARY.map((m) => [path(m), m] as const))(
      "%s: never INTERNAL/UNKNOWN, well-formed errors, failed calls write nothing",
      async (_name, method) => {
        await fc.assert(
          fc.asyncProperty(specArb(method), (spec) => fuzzUnary(door, method, spec)),
          fcParams(RUNS[door]),
        );
      },
    );

    it.each(STREAMING.map((m) => [path(m), m] as const))(
      "%s (streaming, cancelled after the first message or 200 ms): never INTERNAL/UNKNOWN",
      async (_name, method) => {
        await fc.assert(
          fc.asyncProperty(specArb(method), (spec) => fuzzStream(door, method, spec)),
          fcParams(STREAM_RUNS[door]),
        );
      },
    );
  });

  it("reached past validation: some calls succeeded, some were NOT_FOUND", () => {
    const codes = [...outcomes.keys()].map((k) => k.split(" ")[1]);
    expect(codes).toContain("OK");
    expect(codes).toContain("NotFound");
    expect(codes).toContain("InvalidArgument");
  });
});

// ---------------------------------------------------------------------------
// b. No partial writes: the stored state agrees with itself and with the outbox
// ---------------------------------------------------------------------------

/** Waits for the reaper to finish every accepted deletion, so only live rows remain. */
async function settle(): Promise<void> {
  t.server.reaper.wake();
  await until(
    "the reaper finishes every deletion",
    async () => Number((await rows("SELECT COUNT(*) AS n FROM deletion_jobs"))[0].n) === 0,
    30_000,
  );
}

interface EventRow {
  seq: number;
  type: string;
  organizationId: string;
  groupId: string;
  cause: string;
  payload: Record<string, unknown>;
}

async function expectConsistentState(): Promise<{ groups: number; links: number; events: number }> {
  await settle();
  const problems: string[] = [];
  const problem = (s: string) => problems.length < 30 && problems.push(s);

  const deleted = await rows(`SELECT
    (SELECT COUNT(*) FROM organizations WHERE deleted_at IS NOT NULL) AS orgs,
    (SELECT COUNT(*) FROM org_groups WHERE deleted_at IS NOT NULL) AS groups`);
  if (Number(deleted[0].orgs) || Number(deleted[0].groups)) {
    problem(`soft-deleted rows left after the reaper finished: ${JSON.stringify(deleted[0])}`);
  }

  const groups = await rows(
    `SELECT g.id, g.organization_id, g.name, g.description, g.version,
            (SELECT COUNT(*) FROM group_memberships gm WHERE gm.group_id = g.id) AS links
     FROM org_groups g`,
  );
  const groupById = new Map(groups.map((g) => [g.id as string, g]));
  // The member count as the API reports it (however it is stored) is the number of links.
  const c = t.clients("grpc");
  for (const g of groups) {
    const { group } = await c.groups.getGroup({ organizationId: g.organization_id, groupId: g.id });
    if (group!.memberCount !== BigInt(g.links)) {
      problem(`${g.id}: member_count ${group!.memberCount} but ${g.links} group memberships`);
    }
  }

  const links = await rows(
    `SELECT gm.group_id, gm.organization_membership_id,
            g.organization_id AS group_org, m.organization_id AS member_org
     FROM group_memberships gm
     LEFT JOIN org_groups g ON g.id = gm.group_id
     LEFT JOIN organization_memberships m ON m.id = gm.organization_membership_id`,
  );
  const linked = new Set<string>();
  for (const l of links) {
    linked.add(`${l.group_id} ${l.organization_membership_id}`);
    if (l.group_org === null || l.group_org !== l.member_org) {
      problem(
        `link ${l.group_id}/${l.organization_membership_id}: group in ${l.group_org}, membership in ${l.member_org}`,
      );
    }
  }

  const events: EventRow[] = (
    await rows(
      "SELECT outbox_seq, type, organization_id, group_id, cause, payload FROM events ORDER BY outbox_seq",
    )
  ).map((r) => ({
    seq: Number(r.outbox_seq),
    type: r.type as string,
    organizationId: r.organization_id as string,
    groupId: r.group_id as string,
    cause: r.cause as string,
    payload: JSON.parse(r.payload as string) as Record<string, unknown>,
  }));

  const byGroup = new Map<string, EventRow[]>();
  for (const e of events) {
    const list = byGroup.get(e.groupId) ?? [];
    list.push(e);
    byGroup.set(e.groupId, list);
  }
  const ofType = (list: EventRow[], type: string) => list.filter((e) => e.type === type);

  // Every group ever created: exactly one group.created; live groups no group.deleted,
  // gone groups exactly one. Every event of a group is in the group's organization.
  for (const [groupId, list] of byGroup) {
    const live = groupById.get(groupId);
    const created = ofType(list, "group.created").length;
    const deletedEvents = ofType(list, "group.deleted").length;
    if (created !== 1) problem(`${groupId}: ${created} group.created events`);
    if (live && deletedEvents !== 0)
      problem(`${groupId} is live but has ${deletedEvents} group.deleted`);
    if (!live && deletedEvents !== 1)
      problem(`${groupId} is gone but has ${deletedEvents} group.deleted`);
    const orgs = new Set(list.map((e) => e.organizationId));
    if (orgs.size !== 1 || (live && !orgs.has(live.organization_id as string))) {
      problem(`${groupId}: events in organizations ${[...orgs].join(", ")}`);
    }
    for (const e of list) {
      const data = e.payload as { kind?: string; group?: { id?: string }; groupId?: string };
      const named = data.kind === "group" ? data.group?.id : data.groupId;
      if (named !== groupId)
        problem(`event ${e.seq} (${e.type}) is about ${named}, filed under ${groupId}`);
    }
  }

  for (const g of groups) {
    const list = byGroup.get(g.id as string) ?? [];
    if (list.length === 0) {
      problem(`${g.id}: a group without any event`);
      continue;
    }
    // The newest group.created/updated event carries the stored name and description,
    // and every stored change of them has its event (version counts the updates).
    const states = list.filter((e) => e.type === "group.created" || e.type === "group.updated");
    const last = states[states.length - 1]?.payload.group as
      { name?: string; description?: string | null } | undefined;
    if (!last || last.name !== g.name || (last.description ?? null) !== (g.description ?? null)) {
      problem(
        `${g.id}: stored ${JSON.stringify([g.name, g.description])}, last event ${JSON.stringify(last && [last.name, last.description])}`,
      );
    }
    const updates = ofType(list, "group.updated").length;
    if (Number(g.version) !== 1 + updates) {
      problem(`${g.id}: version ${g.version} after ${updates} group.updated events`);
    }
    // Every link is accounted for by its member events: added − removed = 1 if linked, else 0.
    const balance = new Map<string, number>();
    for (const e of list) {
      if (e.type !== "group.member_added" && e.type !== "group.member_removed") continue;
      const om = (e.payload as { organizationMembershipId: string }).organizationMembershipId;
      balance.set(om, (balance.get(om) ?? 0) + (e.type === "group.member_added" ? 1 : -1));
    }
    const members = new Set([
      ...balance.keys(),
      ...links
        .filter((l) => l.group_id === g.id)
        .map((l) => l.organization_membership_id as string),
    ]);
    for (const om of members) {
      const expected = linked.has(`${g.id} ${om}`) ? 1 : 0;
      if ((balance.get(om) ?? 0) !== expected) {
        problem(`${g.id}/${om}: linked=${expected} but added−removed=${balance.get(om) ?? 0}`);
      }
    }
  }

  expect(problems).toEqual([]);
  return { groups: groups.length, links: links.length, events: events.length };
}

describe("b. no partial writes", () => {
  it("after the field fuzz: member counts, link tenancy and the outbox agree", async () => {
    const seen = await expectConsistentState();
    // The fuzz did write: more than the seed's 7 groups and their events.
    expect(seen.events).toBeGreaterThan(20);
  });
});

// ---------------------------------------------------------------------------
// c. Raw bodies on both ports
// ---------------------------------------------------------------------------

/** A request body as generated: random bytes, or a real request message, mutated. */
type PayloadSpec =
  | { random: Uint8Array }
  | {
      method: DescMethod;
      spec: Spec;
      mutations: { at: number; op: "flip" | "delete" | "insert" | "truncate"; byte: number }[];
    };

const payloadArb = (methods: DescMethod[]): fc.Arbitrary<PayloadSpec> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((random) => ({ random })),
    fc.constantFrom(...methods).chain((method) =>
      fc.record({
        method: fc.constant(method),
        spec: specArb(method),
        mutations: fc.array(
          fc.record({
            at: fc.nat(),
            op: fc.constantFrom(
              "flip" as const,
              "delete" as const,
              "insert" as const,
              "truncate" as const,
            ),
            byte: fc.integer({ min: 0, max: 255 }),
          }),
          { maxLength: 4 },
        ),
      }),
    ),
  );

function payloadBytes(p: PayloadSpec): Uint8Array {
  if ("random" in p) return p.random;
  let bytes: Uint8Array;
  try {
    bytes = toBinary(p.method.input, create(p.method.input, resolve(p.spec) as never));
  } catch {
    bytes = new Uint8Array();
  }
  const out = [...bytes];
  for (const m of p.mutations) {
    const at = out.length ? m.at % (out.length + 1) : 0;
    if (m.op === "flip" && out.length) out[at % out.length] ^= m.byte || 0x80;
    if (m.op === "delete") out.splice(at, 1);
    if (m.op === "insert") out.splice(at, 0, m.byte);
    if (m.op === "truncate") out.length = at;
  }
  return Uint8Array.from(out);
}

/** One length-prefixed message (gRPC, gRPC-Web, Connect streaming), possibly lying about its length. */
interface FrameSpec {
  flags: number;
  lie: number | "max" | "huge";
  payload: PayloadSpec;
}
const frameArb = (methods: DescMethod[], flags: fc.Arbitrary<number>): fc.Arbitrary<FrameSpec> =>
  fc.record({
    flags,
    lie: fc.oneof(
      { weight: 4, arbitrary: fc.constant(0) },
      { weight: 3, arbitrary: fc.integer({ min: -16, max: 16 }) },
      { weight: 1, arbitrary: fc.constantFrom("max" as const, "huge" as const) },
    ),
    payload: payloadArb(methods),
  });

interface BodySpec {
  frames: FrameSpec[];
  tail: Uint8Array;
}
const bodyArb = (methods: DescMethod[], flags: fc.Arbitrary<number>): fc.Arbitrary<BodySpec> =>
  fc.record({
    frames: fc.array(frameArb(methods, flags), { maxLength: 3 }),
    tail: fc.oneof(
      { weight: 3, arbitrary: fc.constant(new Uint8Array()) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }) },
    ),
  });

function framedBody(b: BodySpec): Buffer {
  const parts: Buffer[] = [];
  for (const f of b.frames) {
    const payload = Buffer.from(payloadBytes(f.payload));
    const declared =
      f.lie === "max"
        ? 0xffffffff
        : f.lie === "huge"
          ? 0x7fffffff
          : Math.max(0, payload.length + f.lie);
    const head = Buffer.alloc(5);
    head.writeUInt8(f.flags & 0xff, 0);
    head.writeUInt32BE(declared >>> 0, 1);
    parts.push(head, payload);
  }
  parts.push(Buffer.from(b.tail));
  return Buffer.concat(parts);
}

const authHeader = () => ({ authorization: `Bearer ${t.apiKey}` });

/**
 * POSTs and reads the answer until it ends or `ms` pass: a valid stream tails
 * forever, and may not even send its headers before its first message.
 */
async function postFor(
  url: string,
  init: { headers: Record<string, string>; body: Buffer },
  ms: number,
): Promise<{ res?: Response; bytes: Buffer; ended: boolean }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  const chunks: Buffer[] = [];
  let res: Response | undefined;
  try {
    res = await fetch(url, { method: "POST", ...init, signal: abort.signal });
    const reader = res.body!.getReader();
    for (;;) {
      const next = await reader.read();
      if (next.done) return { res, bytes: Buffer.concat(chunks), ended: true };
      chunks.push(Buffer.from(next.value));
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
    return { res, bytes: Buffer.concat(chunks), ended: false };
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** Connect's code names ("invalid_argument") → Code. */
const CODE_BY_NAME = new Map(
  Object.values(Code)
    .filter((v): v is Code => typeof v === "number")
    .map((c) => [Code[c].replace(/(?<!^)([A-Z])/g, "_$1").toLowerCase(), c]),
);

/** What a raw call got back, whatever the protocol: HTTP status, code (if any), message and ErrorInfo reason. */
interface RawAnswer {
  httpStatus?: number;
  code?: Code;
  message?: string;
  reason?: string;
}

/** A trailer's value in a gRPC-Web trailer frame. */
/**
 * Never INTERNAL/UNKNOWN/DATA_LOSS, and no HTTP 5xx except for UNAVAILABLE
 * (the only 5xx a caller's input may legitimately meet).
 */
function expectNoInternal(a: RawAnswer, what: string): void {
  const line = `HTTP ${a.httpStatus} ${a.code === undefined ? "(no code)" : Code[a.code]} "${a.message ?? ""}" — ${what}`;
  if (a.code !== undefined) expect(BAD_CODES.has(a.code), line).toBe(false);
  // Even an error the framework raised before the call reached the pipeline.
  if (a.code !== undefined)
    expect(a.reason, `ErrorInfo reason of ${line}`).toMatch(/^[A-Z][A-Z0-9_]*$/);
  if ((a.httpStatus ?? 0) >= 500) expect(a.code, line).toBe(Code.Unavailable);
}

const connectCode = (name: string | undefined) =>
  name === undefined ? undefined : (CODE_BY_NAME.get(name) ?? Code.Unknown);
/** A grpc-status value: "0" is OK (no code), unknown numbers count as UNKNOWN. */
const grpcCode = (status: string | undefined): Code | undefined =>
  status === undefined || status === "0"
    ? undefined
    : Number(status) in Code
      ? (Number(status) as Code)
      : Code.Unknown;

const UNARY_CONTENT_TYPES = ["application/proto", "application/json"] as const;
const ENCODINGS = [
  undefined,
  undefined,
  undefined,
  "gzip",
  "gzip-valid",
  "identity",
  "br",
  "x-junk",
];

interface ConnectUnarySpec {
  method: DescMethod;
  contentType: (typeof UNARY_CONTENT_TYPES)[number];
  encoding: string | undefined;
  timeout: string | undefined;
  proto: PayloadSpec;
  json: JsonBodySpec;
}

type JsonBodySpec =
  | { text: string }
  | { value: unknown }
  | { method: DescMethod; spec: Spec; cut: number | undefined };

/** JSON values shaped like a request: real field names (both spellings) with values of any type. */
const jsonFieldValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string(),
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(
    "9223372036854775808",
    "-9223372036854775809",
    "1e309",
    "NaN",
    "Infinity",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00+25:00",
    "2024-02-30T00:00:00Z",
    "ORDER_ASC",
    "ORDER_NOPE",
    "ORGANIZATION_MEMBERSHIP_STATUS_ACTIVE",
  ),
  fc.constantFrom(1e21, -1e21, 2 ** 31, 2 ** 53 + 1, 1.5, -0),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

const jsonBodyArb = (method: DescMethod): fc.Arbitrary<JsonBodySpec> => {
  const names = method.input.fields.flatMap((f) => [f.jsonName, f.name]);
  return fc.oneof(
    fc.string({ unit: "binary", maxLength: 200 }).map((text) => ({ text })),
    fc
      .constantFrom("", "{", "[]", "null", "0", '"x"', "{}{}", '{"a":1,}', "\uFEFF{}")
      .map((text) => ({ text })),
    fc.jsonValue({ maxDepth: 3 }).map((value) => ({ value })),
    fc
      .dictionary(
        fc.constantFrom(...names, "$typeName", "__proto__", "unknownField"),
        jsonFieldValue,
        {
          maxKeys: 6,
        },
      )
      .map((value) => ({ value })),
    fc.record({
      method: fc.constant(method),
      spec: specArb(method),
      cut: fc.option(fc.nat(), { nil: undefined }),
    }),
  );
};

function jsonBodyText(b: JsonBodySpec): string {
  if ("text" in b) return b.text;
  if ("value" in b) return JSON.stringify(b.value) ?? "null";
  let text: string;
  try {
    text = JSON.stringify(toJson(b.method.input, create(b.method.input, resolve(b.spec) as never)));
  } catch {
    text = "{}";
  }
  return b.cut === undefined ? text : text.slice(0, b.cut % (text.length + 1));
}

function encode(body: Buffer, encoding: string | undefined): { body: Buffer; header?: string } {
  if (encoding === undefined) return { body };
  if (encoding === "gzip-valid") return { body: gzipSync(body), header: "gzip" };
  return { body, header: encoding };
}

const connectUnaryArb: fc.Arbitrary<ConnectUnarySpec> = fc.constantFrom(...UNARY).chain((method) =>
  fc.record({
    method: fc.constant(method),
    contentType: fc.constantFrom(...UNARY_CONTENT_TYPES),
    encoding: fc.constantFrom(...ENCODINGS),
    timeout: fc.constantFrom(
      undefined,
      undefined,
      undefined,
      "abc",
      "-1",
      "0",
      "99999999999",
      "5000",
    ),
    proto: payloadArb([method]),
    json: jsonBodyArb(method),
  }),
);

/** A fuzzed message as bytes: its binary payload, or its JSON text. */
function rawMessage(binary: boolean, s: Pick<ConnectUnarySpec, "proto" | "json">): Buffer {
  return binary ? Buffer.from(payloadBytes(s.proto)) : Buffer.from(jsonBodyText(s.json), "utf8");
}

async function postConnectUnary(s: ConnectUnarySpec): Promise<void> {
  const raw = rawMessage(s.contentType === "application/proto", s);
  const { body, header } = encode(raw, s.encoding);
  const headers: Record<string, string> = {
    ...authHeader(),
    "content-type": s.contentType,
    "connect-protocol-version": "1",
  };
  if (header) headers["content-encoding"] = header;
  if (s.timeout) headers["connect-timeout-ms"] = s.timeout;
  const what = `POST ${path(s.method)} ${s.contentType} encoding=${s.encoding} timeout=${s.timeout} body=${show(raw.subarray(0, 200).toString("latin1"))}`;
  const res = await fetch(`${t.httpUrl}${path(s.method)}`, { method: "POST", headers, body });
  const text = Buffer.from(await res.arrayBuffer()).toString("utf8");
  let error: ConnectErrorJson = {};
  if (
    res.status !== 200 &&
    (res.headers.get("content-type") ?? "").startsWith("application/json")
  ) {
    error = JSON.parse(text) as typeof error;
  }
  const code = connectCode(error.code);
  count(`raw connect ${res.status} ${error.code ?? ""}`);
  // A deadline the caller asked for may legitimately expire.
  if (code === Code.DeadlineExceeded) {
    expect(s.timeout, what).toBeDefined();
    return;
  }
  // An encoding the server does not speak is "unimplemented" by the protocol.
  if (code === Code.Unimplemented) {
    expect(["br", "x-junk"], `${error.code} — ${what}`).toContain(s.encoding);
    return;
  }
  expectNoInternal(
    { httpStatus: res.status, code, message: error.message, reason: reasonOfConnectJson(error) },
    what,
  );
}

interface StreamPostSpec {
  method: DescMethod;
  protocol: "connect" | "grpc-web";
  json: boolean;
  body: BodySpec;
}

const streamPostArb: fc.Arbitrary<StreamPostSpec> = fc.record({
  method: fc.constantFrom(...STREAMING, ...UNARY.slice(0, 3)),
  protocol: fc.constantFrom("connect" as const, "grpc-web" as const),
  json: fc.boolean(),
  body: bodyArb(
    [...STREAMING, ...UNARY],
    fc.oneof(fc.constantFrom(0, 0, 0, 1, 2, 0x80), fc.integer({ min: 0, max: 255 })),
  ),
});

/** Connect streaming (application/connect+…) and gRPC-Web (application/grpc-web+proto) on PORT. */
async function postFramed(s: StreamPostSpec): Promise<void> {
  const body = framedBody(s.body);
  const grpcWeb = s.protocol === "grpc-web";
  if (!grpcWeb && s.method.methodKind !== "server_streaming") return; // unary Connect is not enveloped
  const contentType = grpcWeb
    ? "application/grpc-web+proto"
    : `application/connect+${s.json ? "json" : "proto"}`;
  const headers: Record<string, string> = { ...authHeader(), "content-type": contentType };
  if (grpcWeb) headers["x-grpc-web"] = "1";
  else headers["connect-protocol-version"] = "1";
  const what = `POST ${path(s.method)} ${contentType} body=${body.subarray(0, 120).toString("hex")}(${body.length})`;
  const { res, bytes, ended } = await postFor(
    `${t.httpUrl}${path(s.method)}`,
    { headers, body },
    250,
  );
  if (!res) {
    count(`raw ${s.protocol} tailing (no headers yet)`);
    return;
  }
  if (grpcWeb) {
    let status = res.headers.get("grpc-status") ?? undefined;
    let message = res.headers.get("grpc-message") ?? undefined;
    let details = res.headers.get("grpc-status-details-bin") ?? undefined;
    for (const f of frames(bytes)) {
      if (!(f.flags & 0x80)) continue;
      const trailer = f.payload.toString("latin1");
      status = /grpc-status:\s*(\d+)/i.exec(trailer)?.[1];
      message = trailerValue(trailer, "grpc-message");
      details = trailerValue(trailer, "grpc-status-details-bin");
    }
    count(`raw grpc-web ${res.status} ${status ?? (ended ? "none" : "tailing")}`);
    expectNoInternal(
      {
        httpStatus: res.status,
        code: grpcCode(status),
        message: decodeURIComponent(message ?? ""),
        reason: statusDetailsOf(details).reason,
      },
      what,
    );
    return;
  }
  let error: ConnectErrorJson | undefined;
  if (res.status !== 200) {
    error = JSON.parse(bytes.toString("utf8") || "{}") as typeof error;
  } else {
    error = endStreamError<ConnectErrorJson>(bytes);
  }
  count(`raw connect-stream ${res.status} ${error?.code ?? (ended ? "none" : "tailing")}`);
  expectNoInternal(
    {
      httpStatus: res.status,
      code: connectCode(error?.code),
      message: error?.message,
      reason: reasonOfConnectJson(error),
    },
    what,
  );
}

const h2 = new RawH2();

/** One raw gRPC call over HTTP/2, authenticated: what came back within 500 ms (a valid stream tails). */
const h2Call = (
  authority: string,
  method: DescMethod,
  headers: Record<string, string>,
  body: Buffer,
) => h2.call(authority, path(method), { ...authHeader(), ...headers }, body);

interface RawGrpcSpec {
  port: "grpc" | "http";
  method: DescMethod;
  body: BodySpec;
  headers: Record<string, string>;
}

const rawGrpcArb = (port: RawGrpcSpec["port"]): fc.Arbitrary<RawGrpcSpec> =>
  fc.record({
    port: fc.constant(port),
    method: fc.constantFrom(...METHODS),
    body: bodyArb(
      METHODS,
      fc.oneof(fc.constantFrom(0, 0, 0, 0, 1), fc.integer({ min: 0, max: 255 })),
    ),
    headers: fc.constant({}),
  });

/** Transport headers a hostile caller controls: deadlines and message compression. */
const rawGrpcHeadersArb = (port: RawGrpcSpec["port"]): fc.Arbitrary<RawGrpcSpec> =>
  fc.record({
    port: fc.constant(port),
    method: fc.constantFrom(...UNARY),
    body: bodyArb(UNARY, fc.constantFrom(0, 1)),
    headers: fc
      .record(
        {
          "grpc-timeout": fc.oneof(
            fc.constantFrom("1S", "100m", "5000000u", "0n", "99999999S", "1H", "2M"),
            fc.constantFrom("", "abc", "-1S", "1", "1X", "123456789012S", "1.5S", " 1S"),
            fc.string({ unit: "grapheme-ascii", maxLength: 10 }),
          ),
          "grpc-encoding": fc.oneof(
            fc.constantFrom("identity", "gzip", "deflate", "snappy", "br", "zstd"),
            fc.string({ unit: "grapheme-ascii", maxLength: 10 }),
          ),
        },
        { requiredKeys: [] },
      )
      // Header values must be legal HTTP/2 field values, or the client refuses to send them.
      .map((h) =>
        Object.fromEntries(
          Object.entries(h).filter(([, v]) => /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v)),
        ),
      ),
  });

async function rawGrpc(s: RawGrpcSpec): Promise<void> {
  const body = framedBody(s.body);
  const authority = s.port === "grpc" ? `http://${t.grpcAddress}` : t.httpUrl;
  const r = await h2Call(authority, s.method, s.headers, body);
  const what = `h2 ${s.port} ${path(s.method)} headers=${JSON.stringify(s.headers)} body=${body.subarray(0, 120).toString("hex")}(${body.length})`;
  count(`raw h2 ${s.port} ${r.grpcStatus ?? (r.settled ? "reset" : "tailing")}`);
  // A deadline the caller asked for may legitimately expire.
  if (grpcCode(r.grpcStatus) === Code.DeadlineExceeded) {
    expect(s.headers["grpc-timeout"], what).toBeDefined();
    return;
  }
  expectNoInternal(
    {
      httpStatus: r.httpStatus,
      code: grpcCode(r.grpcStatus),
      message: decodeURIComponent(r.message ?? ""),
      reason: statusDetailsOf(r.detailsBin).reason,
    },
    what,
  );
}

/** Connect GET (`?connect=v1&encoding=…&message=…`), served for NO_SIDE_EFFECTS methods. */
interface ConnectGetSpec {
  method: DescMethod;
  encoding: string;
  base64: boolean;
  compression: string | undefined;
  proto: PayloadSpec;
  json: JsonBodySpec;
}

const GET_METHODS = METHODS.filter(
  (m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
);

const connectGetArb: fc.Arbitrary<ConnectGetSpec> = fc
  .constantFrom(...(GET_METHODS.length ? GET_METHODS : UNARY))
  .chain((method) =>
    fc.record({
      method: fc.constant(method),
      encoding: fc.constantFrom("proto", "json", "json", "xml", ""),
      base64: fc.boolean(),
      compression: fc.constantFrom(undefined, undefined, "gzip", "gzip-valid", "br", "x"),
      proto: payloadArb([method]),
      json: jsonBodyArb(method),
    }),
  );

async function getConnect(s: ConnectGetSpec): Promise<void> {
  const raw = rawMessage(s.encoding === "proto", s);
  const { body, header } = encode(raw, s.compression);
  const q = new URLSearchParams({ connect: "v1", encoding: s.encoding });
  q.set("message", s.base64 ? body.toString("base64url") : body.toString("latin1"));
  if (s.base64) q.set("base64", "1");
  if (header) q.set("compression", header);
  const what = `GET ${path(s.method)}?${q.toString().slice(0, 300)}`;
  const res = await fetch(`${t.httpUrl}${path(s.method)}?${q}`, { headers: authHeader() });
  const text = await res.text();
  let error: ConnectErrorJson = {};
  if (
    res.status !== 200 &&
    (res.headers.get("content-type") ?? "").startsWith("application/json")
  ) {
    error = JSON.parse(text) as typeof error;
  }
  const code = connectCode(error.code);
  count(`raw connect GET ${res.status} ${error.code ?? ""}`);
  if (code === Code.Unimplemented) {
    expect(["br", "x"], `${error.code} — ${what}`).toContain(s.compression);
    return;
  }
  expectNoInternal(
    { httpStatus: res.status, code, message: error.message, reason: reasonOfConnectJson(error) },
    what,
  );
}

/** One hostile request per framework error path the fuzz found, as a regression table. */
const UNDECODABLE = Buffer.from([0x00]); // field number 0: never valid protobuf
const listOrgs = OrganizationsService.methods.find((m) => m.name === "ListOrganizations")!;
const streamEvents = EventsService.methods.find((m) => m.name === "StreamEvents")!;

async function grpcAnswer(
  port: "grpc" | "http",
  headers: Record<string, string>,
  body: Buffer,
): Promise<RawAnswer> {
  const authority = port === "grpc" ? `http://${t.grpcAddress}` : t.httpUrl;
  const r = await h2Call(authority, listOrgs, headers, body);
  return {
    httpStatus: r.httpStatus,
    code: grpcCode(r.grpcStatus),
    message: decodeURIComponent(r.message ?? ""),
    reason: statusDetailsOf(r.detailsBin).reason,
  };
}

async function connectAnswer(
  init: { headers: Record<string, string>; body: Buffer },
  method = listOrgs,
): Promise<RawAnswer> {
  const { res, bytes } = await postFor(
    `${t.httpUrl}${path(method)}`,
    {
      headers: { ...authHeader(), "connect-protocol-version": "1", ...init.headers },
      body: init.body,
    },
    2_000,
  );
  if (!res) return {};
  let error: ConnectErrorJson | undefined;
  if (res.status !== 200) error = JSON.parse(bytes.toString("utf8") || "{}") as typeof error;
  for (const f of frames(bytes)) {
    if (res.headers.get("content-type")?.startsWith("application/connect+") && f.flags & 0x02) {
      error = (JSON.parse(f.payload.toString("utf8")) as { error?: typeof error }).error;
    }
    if (res.headers.get("content-type")?.startsWith("application/grpc-web") && f.flags & 0x80) {
      const trailer = f.payload.toString("latin1");
      const status = /grpc-status:\s*(\d+)/i.exec(trailer)?.[1];
      return {
        httpStatus: res.status,
        code: grpcCode(status),
        message: decodeURIComponent(trailerValue(trailer, "grpc-message") ?? ""),
        reason: statusDetailsOf(trailerValue(trailer, "grpc-status-details-bin")).reason,
      };
    }
  }
  return {
    httpStatus: res.status,
    code: connectCode(error?.code),
    message: error?.message,
    reason: reasonOfConnectJson(error),
  };
}

const FRAMEWORK_CASES: [string, () => Promise<RawAnswer>][] = [
  [
    "GRPC_PORT (grpc-js): a message that is not protobuf",
    () => grpcAnswer("grpc", {}, envelope(UNDECODABLE, 0)),
  ],
  [
    "GRPC_PORT (grpc-js): grpc-encoding gzip with a payload that is not gzip",
    () => grpcAnswer("grpc", { "grpc-encoding": "gzip" }, envelope(Buffer.from("not gzip"), 1)),
  ],
  [
    "GRPC_PORT (grpc-js): a malformed grpc-timeout header",
    () => grpcAnswer("grpc", { "grpc-timeout": "abc" }, envelope(Buffer.alloc(0), 0)),
  ],
  [
    "PORT, gRPC: a message that is not protobuf",
    () => grpcAnswer("http", {}, envelope(UNDECODABLE, 0)),
  ],
  [
    "PORT, gRPC: the compressed flag without grpc-encoding",
    () => grpcAnswer("http", {}, envelope(Buffer.from("x"), 1)),
  ],
  [
    "PORT, gRPC-Web: a message that is not protobuf",
    () =>
      connectAnswer({
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: envelope(UNDECODABLE, 0),
      }),
  ],
  [
    "PORT, Connect unary application/proto: a body that is not protobuf",
    () => connectAnswer({ headers: { "content-type": "application/proto" }, body: UNDECODABLE }),
  ],
  [
    "PORT, Connect unary: content-encoding gzip with a truncated gzip body",
    () =>
      connectAnswer({
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipSync(Buffer.from("{}")).subarray(0, 12),
      }),
  ],
  [
    "PORT, Connect GET: a query message that is not protobuf",
    async () => {
      const res = await fetch(
        `${t.httpUrl}${path(listOrgs)}?connect=v1&encoding=proto&base64=1&message=AA`,
        { headers: authHeader() },
      );
      const error = (await res.json()) as ConnectErrorJson;
      return {
        httpStatus: res.status,
        code: connectCode(error.code),
        message: error.message,
        reason: reasonOfConnectJson(error),
      };
    },
  ],
  [
    "PORT, Connect streaming application/connect+proto: an envelope that is not protobuf",
    () =>
      connectAnswer(
        {
          headers: { "content-type": "application/connect+proto" },
          body: envelope(UNDECODABLE, 0),
        },
        streamEvents,
      ),
  ],
];

/** The server still works: a normal call on each door and the HTTP probes. */
async function expectHealthy(): Promise<void> {
  for (const door of ["grpc", "connect", "grpc-web"] as const) {
    const res = await t.clients(door).orgs.listOrganizations({ limit: 1 });
    expect(res.organizations.length).toBe(1);
  }
  expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);
}

describe("c. raw request bodies", () => {
  it("Connect unary (application/proto, application/json, compressed, timeouts): never internal/unknown", async () => {
    await fc.assert(fc.asyncProperty(connectUnaryArb, postConnectUnary), fcParams(RAW_RUNS * 2));
  });

  it("Connect streaming envelopes and gRPC-Web frames with lying lengths: never INTERNAL/UNKNOWN", async () => {
    await fc.assert(fc.asyncProperty(streamPostArb, postFramed), fcParams(RAW_RUNS));
  });

  it("raw HTTP/2 gRPC frames to the grpc-js port (GRPC_PORT): never INTERNAL/UNKNOWN", async () => {
    await fc.assert(fc.asyncProperty(rawGrpcArb("grpc"), rawGrpc), fcParams(RAW_RUNS));
  });

  it("raw HTTP/2 gRPC frames to the Connect port (gRPC on PORT): never INTERNAL/UNKNOWN", async () => {
    await fc.assert(fc.asyncProperty(rawGrpcArb("http"), rawGrpc), fcParams(RAW_RUNS / 2));
  });

  it("Connect GET of side-effect-free methods (query-string messages): never internal/unknown", async () => {
    expect(GET_METHODS.length).toBeGreaterThan(0);
    await fc.assert(fc.asyncProperty(connectGetArb, getConnect), fcParams(RAW_RUNS));
  });

  it.each(["grpc", "http"] as const)(
    "raw HTTP/2 gRPC transport headers (grpc-timeout, grpc-encoding) on the %s port: never INTERNAL/UNKNOWN",
    async (port) => {
      await fc.assert(fc.asyncProperty(rawGrpcHeadersArb(port), rawGrpc), fcParams(RAW_RUNS / 2));
    },
  );

  // The minimal repros of what the properties above found (framework error paths).
  it.each(FRAMEWORK_CASES)("%s: not INTERNAL/UNKNOWN, with a reason", async (what, send) => {
    expectNoInternal(await send(), what);
  });

  it("the server still answers normal calls, /healthz and /readyz", async () => {
    await expectHealthy();
  });

  it("and the stored state is still consistent (raw bodies can write too)", async () => {
    await expectConsistentState();
  });
});
