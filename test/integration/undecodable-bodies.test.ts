/**
 * Bodies that do not decode (SPEC §3 errors: INVALID_ARGUMENT with a
 * google.rpc.BadRequest listing every bad field): the decoder stops at the
 * first bad field and, in binary, names none, so the service reads such a body
 * again field by field. On every door and encoding — grpc-js, connect-node's
 * gRPC, gRPC-Web, Connect binary (plain, gzip, GET) and JSON, and Connect
 * streaming — the answer is INVALID_ARGUMENT, reason MALFORMED_REQUEST, with
 * exactly the bad fields named, and nothing is written.
 */
import { gzipSync } from "node:zlib";
import type { DescMessage } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamEventsRequestSchema } from "../../clients/src/gen/groups/v1/events_pb.js";
import {
  BatchAddGroupMembersRequestSchema,
  ListGroupsRequestSchema,
} from "../../clients/src/gen/groups/v1/groups_pb.js";
import {
  badFieldsOfConnectJson,
  badFieldsOfStatus,
  reasonOfConnectJson,
  statusDetailsOf,
  type ConnectErrorJson,
} from "../support/assertions.js";
import {
  endStreamError,
  envelope,
  frames,
  trailerValue,
  withInvalidUtf8,
} from "../support/bodies.js";
import { RawH2 } from "../support/raw-h2.js";
import { startTestServer, type TestServer } from "../support/server.js";

let t: TestServer;
let org: string;
let group: string;
let member: string;

beforeAll(async () => {
  t = await startTestServer();
  const c = t.clients("grpc");
  org = (await c.orgs.createOrganization({ name: "Org" })).organization!.id;
  member = (await c.orgs.createOrganizationMembership({ organizationId: org, userId: "u" }))
    .organizationMembership!.id;
  group = (await c.groups.createGroup({ organizationId: org, name: "G" })).group!.id;
});

afterAll(async () => {
  await t?.close();
});

/** What an error answer said: its gRPC/Connect code name, ErrorInfo reason and bad fields. */
interface Answer {
  code: string;
  reason: string | undefined;
  fields: string[];
}

const MALFORMED = (fields: string[]): Answer => ({
  code: "invalid_argument",
  reason: "MALFORMED_REQUEST",
  fields,
});

/** A gRPC status's `grpc-status-details-bin` as an Answer. */
function answerOfStatus(code: number, bin: Buffer | string | undefined): Answer {
  const details = statusDetailsOf(bin);
  expect(details.code, "details carry the same code").toBe(code);
  return {
    code: grpc.status[code].toLowerCase(),
    reason: details.reason,
    fields: badFieldsOfStatus(bin),
  };
}

const answerOfJson = (error: ConnectErrorJson | undefined): Answer => ({
  code: error?.code ?? "none",
  reason: reasonOfConnectJson(error),
  fields: badFieldsOfConnectJson(error),
});

/** Through plain @grpc/grpc-js, bytes as they are: unary, or the first answer of a stream. */
function grpcCall(port: number, path: string, bytes: Buffer, streaming: boolean): Promise<Answer> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${t.apiKey}`);
  const same = (b: Buffer) => b;
  return new Promise<Answer>((resolve, reject) => {
    const settle = (err: grpc.ServiceError | null) => {
      client.close();
      if (!err) return reject(new Error("the call succeeded"));
      const [bin] = err.metadata.get("grpc-status-details-bin") as Buffer[];
      resolve(answerOfStatus(err.code, bin));
    };
    if (streaming) {
      const call = client.makeServerStreamRequest(path, same, same, bytes, metadata);
      call.on("data", () => settle(null));
      call.on("error", settle);
    } else {
      client.makeUnaryRequest(path, same, same, bytes, metadata, settle);
    }
  });
}

async function post(path: string, headers: Record<string, string>, body: Buffer) {
  const res = await fetch(`${t.httpUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.apiKey}`, ...headers },
    body,
  });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** The header the server requires of every Connect request (SPEC §6). */
const CONNECT = { "connect-protocol-version": "1" };

/** A message to a method, sent by each door and encoding a browser or service may use. */
type Door = (path: string, desc: DescMessage, bytes: Buffer, streaming: boolean) => Promise<Answer>;

const DOORS: [string, Door][] = [
  ["grpc-js (GRPC_PORT)", (path, _, bytes, s) => grpcCall(t.server.grpcPort, path, bytes, s)],
  ["connect-node gRPC (PORT)", (path, _, bytes, s) => grpcCall(t.server.httpPort, path, bytes, s)],
  [
    "gRPC-Web",
    async (path, _, bytes) => {
      const { res, bytes: body } = await post(
        path,
        { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        envelope(bytes),
      );
      const trailer =
        frames(body)
          .find((f) => f.flags & 0x80)
          ?.payload.toString("latin1") ?? "";
      const value = (key: string) => res.headers.get(key) ?? trailerValue(trailer, key);
      return answerOfStatus(Number(value("grpc-status")), value("grpc-status-details-bin"));
    },
  ],
  [
    "Connect binary",
    async (path, _, bytes, streaming) => {
      const { bytes: body } = streaming
        ? await post(
            path,
            { "content-type": "application/connect+proto", ...CONNECT },
            envelope(bytes),
          )
        : await post(path, { "content-type": "application/proto", ...CONNECT }, bytes);
      return answerOfConnectBody(body, streaming);
    },
  ],
  [
    "Connect binary, gzip",
    async (path, _, bytes, streaming) => {
      const { bytes: body } = streaming
        ? await post(
            path,
            {
              "content-type": "application/connect+proto",
              ...CONNECT,
              "connect-content-encoding": "gzip",
            },
            envelope(gzipSync(bytes), 1),
          )
        : await post(
            path,
            { "content-type": "application/proto", "content-encoding": "gzip", ...CONNECT },
            gzipSync(bytes),
          );
      return answerOfConnectBody(body, streaming);
    },
  ],
];

/** A Connect unary error body, or a Connect stream's end-stream error. */
const answerOfConnectBody = (body: Buffer, streaming: boolean): Answer =>
  answerOfJson(
    streaming
      ? endStreamError<ConnectErrorJson>(body)
      : (JSON.parse(body.toString("utf8")) as ConnectErrorJson),
  );

async function writes(): Promise<number> {
  const [rows] = await t.db.sql.query(
    "SELECT (SELECT COUNT(*) FROM group_memberships) + (SELECT COUNT(*) FROM events) AS n",
  );
  return Number((rows as { n: number | string }[])[0].n);
}

describe.each(DOORS)("binary bodies over %s", (_, send) => {
  it("BatchAddGroupMembers names the bad group_id and each bad id by its index, writing nothing", async () => {
    const bytes = withInvalidUtf8(
      BatchAddGroupMembersRequestSchema,
      {
        organizationId: org,
        groupId: "group_POISONED",
        organizationMembershipIds: [member, "om_BAD1", member, "om_BAD3"],
      },
      ["POISONED", "BAD1", "BAD3"],
    );
    const before = await writes();
    expect(
      await send(
        "/groups.v1.GroupsService/BatchAddGroupMembers",
        BatchAddGroupMembersRequestSchema,
        bytes,
        false,
      ),
    ).toEqual(
      MALFORMED(["group_id", "organization_membership_ids[1]", "organization_membership_ids[3]"]),
    );
    expect(await writes()).toBe(before);
  });

  it("StreamEvents (server streaming) names every bad field", async () => {
    const bytes = withInvalidUtf8(
      StreamEventsRequestSchema,
      { organizationId: "org_POISONED", types: ["group.created", "group.BAD"], after: "" },
      ["POISONED", "BAD"],
    );
    expect(
      await send("/groups.v1.EventsService/StreamEvents", StreamEventsRequestSchema, bytes, true),
    ).toEqual(MALFORMED(["types[1]", "organization_id"]));
  });

  it("bytes that are not protobuf at all name no field", async () => {
    const bytes = Buffer.from([0xff, 0xff, 0xff]); // a tag that never ends
    expect(
      await send("/groups.v1.GroupsService/ListGroups", ListGroupsRequestSchema, bytes, false),
    ).toEqual(MALFORMED([]));
  });

  it("a good field in an otherwise good body is never named", async () => {
    // Cut short inside `after`: only the field the body ends in is at fault.
    const good = withInvalidUtf8(ListGroupsRequestSchema, { organizationId: org, after: "x" }, []);
    const bytes = good.subarray(0, good.length - 1);
    expect(
      await send("/groups.v1.GroupsService/ListGroups", ListGroupsRequestSchema, bytes, false),
    ).toEqual(MALFORMED(["after"]));
  });
});

describe("Connect GET and JSON bodies", () => {
  it("a GET (base64 protobuf in the query) names every bad field", async () => {
    const bytes = withInvalidUtf8(
      ListGroupsRequestSchema,
      { organizationId: "org_POISONED", before: "group_BAD" },
      ["POISONED", "BAD"],
    );
    const query = new URLSearchParams({
      connect: "v1",
      encoding: "proto",
      base64: "1",
      message: bytes.toString("base64url"),
    });
    const res = await fetch(`${t.httpUrl}/groups.v1.GroupsService/ListGroups?${query}`, {
      headers: { authorization: `Bearer ${t.apiKey}` },
    });
    expect(res.status).toBe(400);
    expect(answerOfJson((await res.json()) as ConnectErrorJson)).toEqual(
      MALFORMED(["organization_id", "before"]),
    );
  });

  it("JSON names every bad value and unknown key, not only the first", async () => {
    const text =
      '{"organizationId":"\\ud800","groupId":"g","organizationMembershipIds":["om_a",7,"\\udc00"],"colour":1}';
    const before = await writes();
    const { res, bytes } = await post(
      "/groups.v1.GroupsService/BatchAddGroupMembers",
      { "content-type": "application/json", ...CONNECT },
      Buffer.from(text),
    );
    expect(res.status).toBe(400);
    expect(answerOfJson(JSON.parse(bytes.toString("utf8")) as ConnectErrorJson)).toEqual(
      MALFORMED([
        "organization_id",
        "organization_membership_ids[1]",
        "organization_membership_ids[2]",
        "colour",
      ]),
    );
    expect(await writes()).toBe(before);
  });

  it("Connect streaming JSON names every bad field", async () => {
    const { bytes } = await post(
      "/groups.v1.EventsService/StreamEvents",
      { "content-type": "application/connect+json", ...CONNECT },
      envelope(Buffer.from('{"organizationId":5,"types":["group.created",false]}')),
    );
    expect(answerOfConnectBody(bytes, true)).toEqual(MALFORMED(["organization_id", "types[1]"]));
  });
});

describe("no message at all, on the gRPC doors", () => {
  it.each([
    ["GRPC_PORT (grpc-js)", () => `http://127.0.0.1:${t.server.grpcPort}`],
    ["PORT (connect-node)", () => t.httpUrl],
  ])("%s: a call with no message at all is INVALID_ARGUMENT, not UNIMPLEMENTED", async (_, url) => {
    const h2 = new RawH2();
    try {
      for (const path of [
        "/groups.v1.GroupsService/ListGroups",
        "/groups.v1.EventsService/StreamEvents",
      ]) {
        const auth = { authorization: `Bearer ${t.apiKey}` };
        const r = await h2.call(url(), path, auth, Buffer.alloc(0));
        expect(r.grpcStatus, path).toBe(String(grpc.status.INVALID_ARGUMENT));
        expect(statusDetailsOf(r.detailsBin), path).toEqual({
          code: grpc.status.INVALID_ARGUMENT,
          reason: "MALFORMED_REQUEST",
        });
      }
    } finally {
      h2.close();
    }
  });
});
