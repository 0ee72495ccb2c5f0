import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import type { ClientOptions } from "../../clients/src/sdk/clients.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import { retryUnavailable } from "../../clients/src/sdk/interceptors.js";
import { createNodeClients } from "../../clients/src/sdk/node.js";
import { paginate } from "../../clients/src/sdk/paginate.js";
import { createWebClients } from "../../clients/src/sdk/web.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { sleep } from "../support/wait.js";

/** The SDK in clients/src/sdk against the real server (and, for retries, an in-memory one). */
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

/** Each factory's clients, with any ClientOptions on top. */
const factories = {
  "node, gRPC": (o: ClientOptions = {}) =>
    createNodeClients({ baseUrl: `http://${t.grpcAddress}`, token: t.apiKey, ...o }),
  "node, Connect": (o: ClientOptions = {}) =>
    createNodeClients({ baseUrl: t.httpUrl, protocol: "connect", token: () => t.apiKey, ...o }),
  "web, Connect": (o: ClientOptions = {}) =>
    createWebClients({ baseUrl: t.httpUrl, token: t.apiKey, ...o }),
};

describe.each(Object.entries(factories))("clients (%s)", (_, make) => {
  it("call the service with the token, walk every page, and expose error details", async () => {
    const { organizations, groups } = make();
    const { organization } = await organizations.createOrganization({ name: "SDK Inc" });
    const organizationId = organization!.id;
    const created: string[] = [];
    for (let i = 0; i < 25; i++) {
      created.push((await groups.createGroup({ organizationId, name: `g${i}` })).group!.id);
    }
    const walked: string[] = [];
    for await (const g of paginate(
      (after) => groups.listGroups({ organizationId, limit: 10, after }),
      (r) => r.groups,
    )) {
      walked.push(g.id);
    }
    expect(walked).toEqual([...created].reverse());

    const err = await groups
      .createGroup({ organizationId: "org_x", name: "" })
      .catch((e: unknown) => e);
    expect(errorDetails(err)).toMatchObject({
      code: Code.InvalidArgument,
      codeName: "InvalidArgument",
      reason: "INVALID_FIELDS",
      fieldViolations: [
        { field: "organization_id", description: expect.any(String) },
        { field: "name", description: "is required" },
      ],
    });
    const missing = await groups
      .getGroup({ organizationId, groupId: `group_${ulid()}` })
      .catch((e: unknown) => e);
    expect(errorDetails(missing)).toMatchObject({ code: Code.NotFound, reason: "GROUP_NOT_FOUND" });
  });
});

describe.each(Object.entries(factories))("clients (%s) with a month-long deadline", (_, make) => {
  const MONTH_MS = 30 * 24 * 3600 * 1000; // beyond a JavaScript timer's 2^31 − 1 ms

  it("keep an event tail open and serve a unary call", async () => {
    const { events, organizations } = make();
    const listed = await organizations.listOrganizations({}, { timeoutMs: MONTH_MS });
    expect(listed.organizations.length).toBeGreaterThan(0);

    const stop = new AbortController();
    const tail = (async () => {
      for await (const _ of events.streamEvents({}, { timeoutMs: MONTH_MS, signal: stop.signal }));
    })().catch((err: unknown) => err);
    await sleep(500);
    stop.abort();
    // Ended by our abort after 500 ms, not by its deadline at once.
    expect(errorDetails(await tail)).toMatchObject({ code: Code.Canceled });
  });
});

describe.each(Object.entries(factories))(
  "clients (%s) with a short default deadline",
  (_, make) => {
    it("keep an event tail open past it: the default is for unary calls", async () => {
      const { events } = make({ timeoutMs: 200 });
      const stop = new AbortController();
      const tail = (async () => {
        for await (const _ of events.streamEvents({}, { signal: stop.signal }));
      })().catch((err: unknown) => err);
      await sleep(800);
      stop.abort();
      expect(errorDetails(await tail)).toMatchObject({ code: Code.Canceled });
    });
  },
);

it("the default deadline still ends a unary call the server never answers", async () => {
  const server = http2.createServer();
  // Never answers; the client's cancel at its deadline resets the stream, which Node
  // reports on this side too.
  server.on("stream", (stream) => stream.on("error", () => undefined));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { groups } = createNodeClients({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      timeoutMs: 200,
      retryAttempts: 1,
    });
    const started = Date.now();
    await expect(groups.getGroup({})).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    server.close();
  }
});

describe("retryUnavailable", () => {
  function flaky(failures: number) {
    const calls = { getGroup: 0, createGroup: 0 };
    const transport = createRouterTransport(
      ({ service }) =>
        service(GroupsService, {
          getGroup() {
            if (++calls.getGroup <= failures) throw new ConnectError("draining", Code.Unavailable);
            return { group: { id: "group_x" } };
          },
          createGroup() {
            calls.createGroup++;
            throw new ConnectError("draining", Code.Unavailable);
          },
        }),
      { transport: { interceptors: [retryUnavailable({ attempts: 3, baseDelayMs: 1 })] } },
    );
    return { client: createClient(GroupsService, transport), calls };
  }

  it("repeats a read until it succeeds, within the attempts", async () => {
    const { client, calls } = flaky(2);
    expect((await client.getGroup({})).group?.id).toBe("group_x");
    expect(calls.getGroup).toBe(3);
  });

  it("gives up after the last attempt", async () => {
    const { client, calls } = flaky(5);
    await expect(client.getGroup({})).rejects.toMatchObject({ code: Code.Unavailable });
    expect(calls.getGroup).toBe(3);
  });

  it("never repeats a stream: its request was read as it was sent", async () => {
    // Refused before any answer (as a server whose JWKS is down refuses a
    // StreamEvents), the stream's one request message already consumed.
    let attempts = 0;
    const next = (async () => {
      attempts++;
      throw new ConnectError("draining", Code.Unavailable);
    }) as unknown as Parameters<ReturnType<typeof retryUnavailable>>[0];
    const streamEvents = EventsService.method.streamEvents;
    const req = {
      stream: true,
      method: streamEvents,
      signal: new AbortController().signal,
    } as unknown as Parameters<ReturnType<ReturnType<typeof retryUnavailable>>>[0];
    await expect(
      retryUnavailable({ attempts: 3, baseDelayMs: 1 })(next)(req),
    ).rejects.toMatchObject({ code: Code.Unavailable });
    expect(attempts).toBe(1);
  });

  it("never repeats a write that may have committed, unless it carries a request_id", async () => {
    const { client, calls } = flaky(0);
    await expect(client.createGroup({ name: "x" })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(calls.createGroup).toBe(1);
    await expect(client.createGroup({ name: "x", requestId: "r1" })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(calls.createGroup).toBe(4);
  });
});

describe("refused HTTP/2 streams", () => {
  // A draining server refuses streams opened after its GOAWAY; this one refuses every stream.
  async function refusingServer() {
    const server = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on("session", (session) => sessions.add(session));
    let streams = 0;
    server.on("stream", (stream) => {
      streams++;
      stream.on("error", () => {}); // Node reports the server's own reset on its side too.
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      streams: () => streams,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const session of sessions) session.destroy(); // the client keeps its connection
        }),
    };
  }

  it("are UNAVAILABLE, not INTERNAL, and even a write is sent again: the server never started it", async () => {
    const server = await refusingServer();
    try {
      const once = createNodeClients({ baseUrl: server.baseUrl, retryAttempts: 1 });
      await expect(once.groups.createGroup({ name: "x" })).rejects.toMatchObject({
        code: Code.Unavailable,
      });
      expect(server.streams()).toBe(1);

      const retrying = createNodeClients({ baseUrl: server.baseUrl, retryAttempts: 3 });
      await expect(retrying.groups.createGroup({ name: "x" })).rejects.toMatchObject({
        code: Code.Unavailable,
      });
      expect(server.streams()).toBe(4);
    } finally {
      await server.close();
    }
  });
});
