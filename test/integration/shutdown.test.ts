import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventsService } from "../../clients/src/gen/groups/v1/events_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../clients/src/gen/grpc/health/v1/health_pb.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import { createNodeClients } from "../../clients/src/sdk/node.js";
import { pool } from "../support/assertions.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { startServerProcess } from "../support/process.js";
import { startTestServer } from "../support/server.js";
import { sleep, until } from "../support/wait.js";

/**
 * SIGTERM with calls in flight and an open event stream: everything finishes,
 * exit code 0; and what a client still connected sees meanwhile (SPEC §7:
 * health flips to NOT_SERVING, new calls are refused, in-flight calls drain).
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe("graceful shutdown", () => {
  it("lets in-flight calls finish, ends open streams cleanly, and exits 0", async () => {
    const server = await startServerProcess({ DATABASE_URL: db.url, AUTH_DISABLED: "1" });
    // The SDK's gRPC clients, each call tried once: a call opened just after the
    // server's GOAWAY is refused (REFUSED_STREAM), which the bare connect-node
    // transport would report as INTERNAL (clients/src/sdk/interceptors.ts).
    const { organizations: orgs, groups } = createNodeClients({
      baseUrl: `http://127.0.0.1:${server.grpcPort}`,
      retryAttempts: 1,
    });
    const connect = createConnectTransport({
      baseUrl: `http://127.0.0.1:${server.httpPort}`,
      httpVersion: "1.1",
    });
    const { organization } = await orgs.createOrganization({ name: "Shutdown Inc" });

    const streamed: string[] = [];
    const stream = (async () => {
      for await (const m of createClient(EventsService, connect).streamEvents({})) {
        streamed.push(m.event!.id);
      }
      return "ended";
    })();
    // The stream is open on the server once it carries an event made after it started.
    await groups.createGroup({ organizationId: organization!.id, name: "before" });
    await until("the stream's first event", async () => streamed.length > 0);

    // 40 creates in flight when the signal arrives; each must either succeed or
    // be refused as UNAVAILABLE (never cut off half-way, never INTERNAL).
    const calls = pool(
      Array.from({ length: 40 }, (_, i) => i),
      20,
      (i) =>
        groups.createGroup({ organizationId: organization!.id, name: `g${i}` }).then(
          () => "ok",
          (err: { code?: number }) => `code ${err.code}`,
        ),
    );
    await new Promise((r) => setTimeout(r, 20));
    const exit = server.kill("SIGTERM");
    const outcomes = await calls;
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(await stream).toBe("ended");
    expect(outcomes.filter((o) => o !== "ok" && o !== "code 14")).toEqual([]);
    const ok = outcomes.filter((o) => o === "ok").length;
    const [rows] = await db.sql.query("SELECT COUNT(*) AS n FROM org_groups");
    expect(Number((rows as { n: number }[])[0].n)).toBe(1 + ok);
    expect(server.logs.some((l) => l.includes('"shutting down"'))).toBe(true);
    // Log lines are written in chunks (server/src/ops/logger.ts): the exit flushes what was pending.
    const created = server.logs.filter((l) => l.includes('"CreateGroup ok"'));
    expect(created).toHaveLength(1 + ok);
  });

  it("writes a quiet server's log lines within moments, though they fill no chunk", async () => {
    const server = await startServerProcess({ DATABASE_URL: db.url, AUTH_DISABLED: "1" });
    try {
      const { organizations: orgs } = createNodeClients({
        baseUrl: `http://127.0.0.1:${server.grpcPort}`,
      });
      await orgs.createOrganization(
        { name: "Quiet Inc" },
        { headers: { "x-request-id": "quiet-1" } },
      );
      await until("the call's log line", async () =>
        server.logs.some((l) => l.includes('"quiet-1"')),
      );
    } finally {
      await server.kill("SIGTERM");
    }
  });

  it("while calls drain: Check answers NOT_SERVING, other calls SHUTTING_DOWN, the held call finishes", async () => {
    const own = await startTestServer();
    const lock = await mysql.createConnection({ uri: own.db.url });
    try {
      const connect = own.transport("connect"); // HTTP/1.1, kept alive through the drain
      const health = createClient(Health, connect);
      expect((await health.check({})).status).toBe(Status.SERVING);
      const { orgs, groups } = own.clients("connect");
      const organizationId = (await orgs.createOrganization({ name: "Draining" })).organization!.id;
      const group = (await groups.createGroup({ organizationId, name: "g" })).group!;

      // A call held in flight: its write waits for a row lock the test holds.
      await lock.query("START TRANSACTION");
      await lock.query("SELECT id FROM org_groups WHERE id = ? FOR UPDATE", [group.id]);
      const held = own
        .clients("grpc")
        .groups.updateGroup({ organizationId, groupId: group.id, name: "renamed" });
      await until("the update waits for the lock", async () => {
        const [rows] = await lock.query<mysql.RowDataPacket[]>(
          "SELECT COUNT(*) AS n FROM information_schema.processlist " +
            "WHERE db = ? AND id <> CONNECTION_ID() AND command = 'Query' AND info LIKE '%org_groups%'",
          [own.db.name],
        );
        return Number(rows[0].n) > 0;
      });

      const closing = own.server.close();
      await sleep(100);
      expect((await health.check({})).status).toBe(Status.NOT_SERVING);
      const refused = await orgs
        .getOrganization({ organizationId })
        .catch((e: unknown) => errorDetails(e));
      expect(refused).toMatchObject({ reason: "SHUTTING_DOWN" });

      await lock.query("ROLLBACK");
      expect((await held).group?.name).toBe("renamed");
      await closing;
    } finally {
      await lock.end();
      await own.db.drop();
    }
  });
});
