import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../clients/src/gen/grpc/health/v1/health_pb.js";
import { startTestServer, type TestServer } from "../support/server.js";

/** Health (gRPC and HTTP probes) and metrics, as an orchestrator and Prometheus see them. */
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

describe.each(["grpc", "connect"] as const)("grpc.health.v1.Health over %s", (door) => {
  it("answers SERVING without credentials, per service and overall", async () => {
    const health = createClient(Health, t.transport(door, { token: null }));
    expect((await health.check({})).status).toBe(Status.SERVING);
    expect((await health.check({ service: "groups.v1.GroupsService" })).status).toBe(
      Status.SERVING,
    );
    await expect(health.check({ service: "nope.v1.Nothing" })).rejects.toMatchObject({ code: 5 });
    const { statuses } = await health.list({});
    expect(Object.keys(statuses)).toContain("groups.v1.EventsService");
  });
});

describe("HTTP probes and metrics", () => {
  it("serves /healthz, /readyz and /metrics with per-RPC counters", async () => {
    await t.clients("grpc").orgs.listOrganizations({});
    await t
      .clients("connect")
      .orgs.getOrganization({ organizationId: "bad" })
      .catch(() => undefined);
    expect(await (await fetch(`${t.httpUrl}/healthz`)).text()).toBe("ok\n");
    const ready = await fetch(`${t.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain("database: ok");
    const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /groups_rpc_total\{service="groups.v1.OrganizationsService",method="ListOrganizations",door="grpc",code="ok"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /groups_rpc_total\{service="groups.v1.OrganizationsService",method="GetOrganization",door="connect",code="InvalidArgument"\} [1-9]/,
    );
    for (const name of [
      "groups_db_pool_in_use",
      "groups_db_pool_waiting",
      "groups_outbox_backlog",
      "process_resident_memory_bytes",
    ]) {
      expect(metrics).toContain(`\n${name} `);
    }
  });
});

describe("shutdown", () => {
  it("Watch reports NOT_SERVING and /readyz fails once the server starts to stop", async () => {
    const own = await startTestServer();
    const watch = createClient(Health, own.transport("grpc")).watch({});
    const iterator = watch[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.status).toBe(Status.SERVING);
    const readyz = `${own.httpUrl}/readyz`;
    const closing = own.close();
    expect((await iterator.next()).value?.status).toBe(Status.NOT_SERVING);
    await closing;
    await expect(fetch(readyz)).rejects.toThrow();
  });
});

describe("the per-call log line", () => {
  it("carries the request id, the W3C trace id, the RPC, the caller, the door, the code and the time; never the credentials", async () => {
    const lines: string[] = [];
    const logged = await startTestServer({}, { logLines: lines });
    try {
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      await logged.clients("grpc").orgs.createOrganization(
        { name: "Logged" },
        {
          headers: {
            "x-request-id": "req-logged-1",
            traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
          },
        },
      );
      await logged
        .clients("connect")
        .orgs.getOrganization({ organizationId: "bad" })
        .catch(() => undefined);
      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const ok = entries.find((e) => e.msg === "CreateOrganization ok");
      expect(ok).toMatchObject({
        requestId: "req-logged-1",
        traceId,
        rpc: "groups.v1.OrganizationsService/CreateOrganization",
        door: "grpc",
        code: "ok",
      });
      expect(typeof ok!.caller).toBe("string");
      expect(ok!.ms).toBeTypeOf("number");
      const failed = entries.find((e) => e.msg === "GetOrganization InvalidArgument");
      expect(failed).toMatchObject({
        rpc: "groups.v1.OrganizationsService/GetOrganization",
        door: "connect",
        code: "InvalidArgument",
      });
      // Without x-request-id the server makes one, and it is the trace id too.
      expect(failed!.requestId).toMatch(/^[0-9A-Z]{26}$/);
      expect(failed!.traceId).toBe(failed!.requestId);
      expect(failed!.error).toEqual(expect.any(String));
      expect(lines.join("\n")).not.toContain(logged.apiKey);
    } finally {
      await logged.close();
    }
  });
});
