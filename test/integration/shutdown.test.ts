/**
 * A graceful stop as a client still connected sees it (SPEC §7: on SIGTERM
 * health flips to NOT_SERVING, new calls are refused, in-flight calls drain).
 * MariaDB only: a row lock holds a call in flight while the server drains.
 */
import { createClient } from "@connectrpc/connect";
import mysql from "mysql2/promise";
import { expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../clients/src/gen/grpc/health/v1/health_pb.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import { startTestServer } from "../support/server.js";
import { sleep, until } from "../support/wait.js";

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
