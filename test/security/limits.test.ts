/**
 * Message size limits (SPEC §6, issue 4 item 4): a 5 MiB message on each
 * front door is RESOURCE_EXHAUSTED (both doors accept at most 1 MiB,
 * server/src/server.ts MAX_MESSAGE_BYTES), writes nothing, and the process
 * stays healthy: the same client's next normal call succeeds and /readyz is 200.
 * Also: errors stay small enough to be delivered (an INVALID_ARGUMENT naming
 * 1,000 fields), and a response over 1 MiB is never INTERNAL/UNKNOWN.
 */
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import {
  CreateGroupRequestSchema,
  GroupsService,
} from "../../clients/src/gen/groups/v1/groups_pb.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import { MAX_MESSAGE_BYTES } from "../../server/src/server.js";
import { pool } from "../support/assertions.js";
import { startTestServer, type TestServer } from "../support/server.js";

const MiB = 1024 * 1024;
const FIVE_MIB = 5 * MiB;

let t: TestServer;
let orgId: string;

/** Every way a generated client reaches the service, gRPC on PORT included. */
const DOORS = ["grpc", "connect-json", "connect-proto", "grpc-web", "grpc-on-port"] as const;
type Door = (typeof DOORS)[number];

/** The shared test transport; "connect-json" is its "connect" door. */
function transport(door: Door): Transport {
  return t.transport(door === "connect-json" ? "connect" : door);
}

async function groupRows(): Promise<number> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM org_groups");
  return Number(rows[0].n);
}

/** Awaits a call that must fail; returns its ConnectError (bounded: a hang is a failure too). */
async function failure(call: (signal: AbortSignal) => Promise<unknown>): Promise<ConnectError> {
  const signal = AbortSignal.timeout(20_000);
  const err = await call(signal).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, "the call should have failed").toBeDefined();
  expect(signal.aborted, "no answer within 20 s").toBe(false);
  return err!;
}

async function expectHealthy(): Promise<void> {
  expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  expect((await fetch(`${t.httpUrl}/readyz`)).status).toBe(200);
}

beforeAll(async () => {
  t = await startTestServer();
  orgId = (await t.clients("grpc").orgs.createOrganization({ name: "Limits" })).organization!.id;
});

afterAll(async () => {
  await t?.close();
});

it("the limit is 1 MiB on both doors", () => {
  expect(MAX_MESSAGE_BYTES).toBe(MiB);
});

describe.each(DOORS)("a 5 MiB request over %s", (door) => {
  let groups: Client<typeof GroupsService>;
  let events: Client<typeof EventsService>;
  beforeAll(() => {
    const tr = transport(door);
    groups = createClient(GroupsService, tr);
    events = createClient(EventsService, tr);
  });

  it("CreateGroup with a 5 MiB description: RESOURCE_EXHAUSTED, nothing written, the next call works", async () => {
    const before = await groupRows();
    const err = await failure((signal) =>
      groups.createGroup(
        { organizationId: orgId, name: "big", description: "d".repeat(FIVE_MIB) },
        { signal },
      ),
    );
    expect(Code[err.code], err.rawMessage).toBe(Code[Code.ResourceExhausted]);
    expect(await groupRows()).toBe(before);
    const ok = await groups.createGroup({ organizationId: orgId, name: `after ${door}` });
    expect(ok.group!.name).toBe(`after ${door}`);
    await expectHealthy();
  });

  it("a message just over 1 MiB: RESOURCE_EXHAUSTED, and the same client's next call works", async () => {
    const err = await failure((signal) =>
      groups.createGroup(
        { organizationId: orgId, name: "big", description: "d".repeat(MiB + 16) },
        { signal },
      ),
    );
    expect(Code[err.code], err.rawMessage).toBe(Code[Code.ResourceExhausted]);
    // Refused by the framework, before the pipeline, yet with a reason like every error.
    expect(errorDetails(err).reason).toBe("MESSAGE_TOO_LARGE");
    // On the same client (and so the same kept-alive connection).
    const next = await groups
      .getGroup({ organizationId: orgId, groupId: "group_01ARZ3NDEKTSV4RRFFQ69G5FAV" })
      .then(
        () => "OK",
        (e: unknown) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`,
      );
    expect(next, "the next call after a refused 1 MiB + 16 B request").toBe(
      "NotFound: group not found: group_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    );
  });

  it("a message just under 1 MiB is read and validated (INVALID_ARGUMENT naming description)", async () => {
    const fresh = createClient(GroupsService, transport(door));
    const under = await failure((signal) =>
      fresh.createGroup(
        { organizationId: orgId, name: "big", description: "d".repeat(MiB - 4096) },
        { signal },
      ),
    );
    expect(Code[under.code], under.rawMessage).toBe(Code[Code.InvalidArgument]);
    expect(errorDetails(under).fieldViolations.map((v) => v.field)).toEqual(["description"]);
  });

  it("StreamEvents with 5 MiB of filters: RESOURCE_EXHAUSTED", async () => {
    const types = Array.from({ length: 5 * 1024 }, () => "t".repeat(1024));
    const err = await failure(async (signal) => {
      for await (const _ of events.streamEvents({ types }, { signal })) break;
    });
    if (door === "grpc-on-port" && /NGHTTP2_ENHANCE_YOUR_CALM/.test(err.rawMessage)) {
      // Known client-side quirk: the server answers grpc-status 8 in its
      // trailers (asserted with a raw HTTP/2 client in "a raw HTTP/2 gRPC
      // frame … StreamEvents" below), then Node's HTTP/2 stack resets the
      // half-sent upload with ENHANCE_YOUR_CALM, which reaches connect-node's
      // client as a Node stream error it reports as Internal.
      expect(err.rawMessage).toMatch(/ENHANCE_YOUR_CALM/);
    } else {
      expect(Code[err.code], err.rawMessage).toBe(Code[Code.ResourceExhausted]);
    }
    await expectHealthy();
  });
});

describe("5 MiB raw bodies", () => {
  const url = () => `${t.httpUrl}/groups.v1.GroupsService/CreateGroup`;
  const headers = (contentType: string) => ({
    authorization: `Bearer ${t.apiKey}`,
    "content-type": contentType,
    "connect-protocol-version": "1",
  });
  const jsonBody = () =>
    Buffer.from(
      JSON.stringify({ organizationId: orgId, name: "x", description: "d".repeat(FIVE_MIB) }),
    );
  const protoBody = () =>
    Buffer.from(
      toBinary(
        CreateGroupRequestSchema,
        create(CreateGroupRequestSchema, {
          organizationId: orgId,
          name: "x",
          description: "d".repeat(FIVE_MIB),
        }),
      ),
    );

  async function expectConnectResourceExhausted(res: Response) {
    const body = (await res.json()) as { code?: string; message?: string };
    expect({ status: res.status, code: body.code }, body.message).toEqual({
      status: 429,
      code: "resource_exhausted",
    });
  }

  it("Connect JSON with a content-length", async () => {
    await expectConnectResourceExhausted(
      await fetch(url(), {
        method: "POST",
        headers: headers("application/json"),
        body: jsonBody(),
      }),
    );
  });

  it("Connect binary with a content-length", async () => {
    await expectConnectResourceExhausted(
      await fetch(url(), {
        method: "POST",
        headers: headers("application/proto"),
        body: protoBody(),
      }),
    );
  });

  it("Connect JSON streamed in chunks (no content-length)", async () => {
    const body = jsonBody();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < body.length; i += 64 * 1024)
          controller.enqueue(body.subarray(i, i + 64 * 1024));
        controller.close();
      },
    });
    await expectConnectResourceExhausted(
      await fetch(url(), {
        method: "POST",
        headers: headers("application/json"),
        body: stream,
        duplex: "half",
      } as RequestInit),
    );
  });

  it("a 5 MiB gRPC-Web frame", async () => {
    const payload = protoBody();
    const head = Buffer.alloc(5);
    head.writeUInt32BE(payload.length, 1);
    const res = await fetch(url(), {
      method: "POST",
      headers: { ...headers("application/grpc-web+proto"), "x-grpc-web": "1" },
      body: Buffer.concat([head, payload]),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    const status =
      res.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/i.exec(bytes.toString("latin1"))?.[1];
    expect(status).toBe(String(Code.ResourceExhausted));
  });

  it.each([
    ["grpc", "CreateGroup"],
    ["http", "CreateGroup"],
    ["grpc", "StreamEvents"],
    ["http", "StreamEvents"],
  ] as const)(
    "a raw HTTP/2 gRPC frame of 5 MiB (and one that only claims 5 MiB) on the %s port: %s",
    async (port, method) => {
      const authority = port === "grpc" ? `http://${t.grpcAddress}` : t.httpUrl;
      const path =
        method === "CreateGroup"
          ? "/groups.v1.GroupsService/CreateGroup"
          : "/groups.v1.EventsService/StreamEvents";
      const payload = protoBody();
      for (const body of [payload, payload.subarray(0, 1024)]) {
        const head = Buffer.alloc(5);
        head.writeUInt32BE(payload.length, 1); // the second body lies: it claims 5 MiB
        const status = await new Promise<string | undefined>((resolve, reject) => {
          const session = http2.connect(authority);
          session.on("error", () => undefined);
          const req = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/grpc",
            te: "trailers",
            authorization: `Bearer ${t.apiKey}`,
          });
          let got: string | undefined;
          const timer = setTimeout(() => reject(new Error("no answer within 10 s")), 10_000);
          const done = () => {
            clearTimeout(timer);
            session.destroy();
            resolve(got);
          };
          // The answer may come before the server has read the whole body: take it then.
          req.on("response", (h) => {
            got ??= h["grpc-status"] as string | undefined;
            if (got !== undefined) done();
          });
          req.on("trailers", (h) => {
            got = h["grpc-status"] as string | undefined;
            done();
          });
          req.on("data", () => undefined);
          req.on("error", () => undefined);
          req.on("close", done);
          req.end(Buffer.concat([head, body]));
        });
        expect(status).toBe(String(Code.ResourceExhausted));
      }
      await expectHealthy();
    },
  );
});

describe("errors and responses stay deliverable", () => {
  it.each(DOORS)(
    "an INVALID_ARGUMENT naming 1,000 bad fields arrives over %s (first 100 in BadRequest, total in ErrorInfo)",
    async (door) => {
      const groups = createClient(GroupsService, transport(door));
      const err = await failure((signal) =>
        groups.batchAddGroupMembers(
          {
            organizationId: orgId,
            groupId: "group_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            organizationMembershipIds: Array.from({ length: 1000 }, (_, i) => `om_bad_${i}`),
          },
          { signal },
        ),
      );
      const d = errorDetails(err);
      expect(d.codeName).toBe("InvalidArgument");
      expect(d.fieldViolations.length).toBe(100);
      expect(d.fieldViolations[0].field).toBe("organization_membership_ids[0]");
      expect(d.metadata.field_violations_total).toBe("1000");
      expect(d.message.length).toBeLessThanOrEqual(1024);
    },
  );

  it("a page over 1 MiB (1,000 groups of long names) is never INTERNAL/UNKNOWN, on any door", async () => {
    const org = (await t.clients("grpc").orgs.createOrganization({ name: "Wide" })).organization!
      .id;
    const c = t.clients("grpc");
    const emoji = "\u{1F600}";
    await pool(
      Array.from({ length: 1000 }, (_, i) => i),
      16,
      (i) =>
        c.groups.createGroup({
          organizationId: org,
          name: `${i} ${emoji.repeat(250)}`,
          description: emoji.repeat(150),
        }),
    );
    const outcomes: Record<string, string> = {};
    for (const door of DOORS) {
      const groups = createClient(GroupsService, transport(door));
      try {
        const page = await groups.listGroups(
          { organizationId: org, limit: 1000 },
          { signal: AbortSignal.timeout(20_000) },
        );
        outcomes[door] = `OK ${page.groups.length}`;
      } catch (e) {
        const err = ConnectError.from(e);
        outcomes[door] = Code[err.code];
        expect(
          [Code.Internal, Code.Unknown, Code.Canceled],
          `${door}: ${err.rawMessage}`,
        ).not.toContain(err.code);
      }
      // The door still serves a normal page.
      const small = await groups.listGroups({ organizationId: org, limit: 10 });
      expect(small.groups).toHaveLength(10);
    }
    // A valid page the size limit cannot carry is refused as RESOURCE_EXHAUSTED today
    // (1,000 × ~1.7 KB > 1 MiB); what matters here is that it is not INTERNAL/UNKNOWN.
    for (const [door, outcome] of Object.entries(outcomes)) {
      expect(["OK 1000", "ResourceExhausted"], door).toContain(outcome);
    }
    await expectHealthy();
  }, 120_000);
});
