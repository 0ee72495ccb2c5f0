import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_MYSQL_URL } from "../support/database.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * DATABASE_URL's `socket` parameter: a co-located MariaDB reached over its
 * Unix socket. Every connection of the service's pool must really be a socket
 * connection (MariaDB reports those as host "localhost", TCP ones with a port).
 */
let t: TestServer;
let socket: string;

beforeAll(async () => {
  // The socket this machine's MariaDB listens on, as it reports it.
  const admin = await mysql.createConnection(TEST_MYSQL_URL);
  const [[row]] = (await admin.query("SELECT @@socket AS socket")) as unknown as [
    { socket: string }[],
  ];
  await admin.end();
  socket = row.socket;
  expect(socket).toMatch(/^\//);
  t = await startTestServer({}, { databaseUrlParams: `?socket=${encodeURIComponent(socket)}` });
});

afterAll(async () => {
  await t?.close();
});

describe("DATABASE_URL with ?socket=", () => {
  it("serves reads and writes with every pool connection on the Unix socket", async () => {
    const { groups, orgs } = t.clients("grpc");
    const { organization } = await orgs.createOrganization({ name: "Socket Inc" });
    const { group } = await groups.createGroup({
      organizationId: organization!.id,
      name: "Engineering",
    });
    const { organizationMembership: membership } = await orgs.createOrganizationMembership({
      organizationId: organization!.id,
      userId: "user_socket",
    });
    await groups.addGroupMember({
      organizationId: organization!.id,
      groupId: group!.id,
      organizationMembershipId: membership!.id,
    });
    const check = await groups.checkGroupMembership({
      organizationMembershipId: membership!.id,
      groupIds: [group!.id],
    });
    expect(check.groupIds).toEqual([group!.id]);

    const [hosts] = (await t.db.sql.query(
      "SELECT host FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
      [t.db.name],
    )) as unknown as [{ host: string }[]];
    expect(hosts.length).toBeGreaterThan(0);
    expect(new Set(hosts.map((h) => h.host))).toEqual(new Set(["localhost"]));
  });
});
