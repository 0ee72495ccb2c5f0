/**
 * Quick capacity figures for one replica on this machine, each beside a raw
 * baseline measured in the same run: the same kind of transaction through
 * plain mysql2, and a trivial RPC (health check) on the same front door.
 * The service runs as its own process; this process generates the load.
 * Run: npx tsx bench/capacity.ts   (writes bench/results/capacity.json)
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import mysql from "mysql2/promise";
import { Health } from "../clients/src/gen/grpc/health/v1/health_pb.js";
import { GroupsService } from "../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../clients/src/gen/groups/v1/organizations_pb.js";
import { createTestDatabase } from "../test/support/database.js";
import { startServerProcess } from "../test/support/process.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const IN_FLIGHT = 16;

interface Result {
  name: string;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

/** Runs `op` with IN_FLIGHT callers for SECONDS; op(i) gets a per-call counter. */
async function measure(name: string, op: (i: number) => Promise<unknown>): Promise<Result> {
  const latencies: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        const i = next++;
        const t0 = performance.now();
        await op(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  const r = { name, perSecond: latencies.length / SECONDS, p50ms: at(0.5), p99ms: at(0.99) };
  console.log(
    `${name.padEnd(44)} ${r.perSecond.toFixed(0).padStart(7)}/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms`,
  );
  return r;
}

const db = await createTestDatabase();
// Logs (one line per call, as in production) go to /dev/null, not through the load generator.
const server = await startServerProcess(
  { DATABASE_URL: db.url, AUTH_DISABLED: "1" },
  { quiet: true },
);
try {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.grpcPort}` });
  const orgs = createClient(OrganizationsService, transport);
  const groups = createClient(GroupsService, transport);
  const health = createClient(Health, transport);

  const { organization } = await orgs.createOrganization({ name: "Bench" });
  const organizationId = organization!.id;
  const members: string[] = [];
  for (let i = 0; i < 400; i++) {
    const { organizationMembership } = await orgs.createOrganizationMembership({
      organizationId,
      userId: `u${i}`,
    });
    members.push(organizationMembership!.id);
  }
  const groupIds: string[] = [];
  for (let g = 0; g < 40; g++) {
    const { group } = await groups.createGroup({ organizationId, name: `g${g}` });
    groupIds.push(group!.id);
    await groups.batchAddGroupMembers({
      organizationId,
      groupId: group!.id,
      organizationMembershipIds: members.slice(g * 5, g * 5 + 100),
    });
  }

  // Raw baselines.
  const pool = mysql.createPool({ uri: db.url, connectionLimit: IN_FLIGHT });
  await pool.query(
    "CREATE TABLE bench_a (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
  );
  await pool.query(
    "CREATE TABLE bench_b (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
  );
  const rawTx = await measure("raw mysql2: 2 INSERTs + COMMIT", async () => {
    const c = await pool.getConnection();
    try {
      await c.query("BEGIN");
      await c.query("INSERT INTO bench_a (v) VALUES ('x')");
      await c.query("INSERT INTO bench_b (v) VALUES ('y')");
      await c.query("COMMIT");
    } finally {
      c.release();
    }
  });
  const trivial = await measure("trivial RPC (Health.Check, gRPC door)", () => health.check({}));

  // Each caller toggles its own (group, member) pairs so adds and removes always change something.
  const pairs = groupIds.flatMap((g) => members.slice(300, 310).map((m) => [g, m] as const));
  const state = new Map<string, boolean>();
  const addRemove = await measure("AddGroupMember/RemoveGroupMember (40 groups)", async (i) => {
    const [groupId, organizationMembershipId] = pairs[i % pairs.length];
    const key = `${groupId}/${organizationMembershipId}`;
    const member = state.get(key) ?? false;
    state.set(key, !member);
    if (member)
      await groups.removeGroupMember({
        organizationId,
        groupId,
        organizationMembershipId,
        allowMissing: true,
      });
    else await groups.addGroupMember({ organizationId, groupId, organizationMembershipId });
  });
  const check = await measure("CheckGroupMembership (10 group ids)", (i) =>
    groups.checkGroupMembership({
      organizationMembershipId: members[i % 200],
      groupIds: groupIds.slice(i % 30, (i % 30) + 10),
    }),
  );
  const listFor = await measure("ListGroupsForOrganizationMembership", (i) =>
    groups.listGroupsForOrganizationMembership({
      organizationMembershipId: members[i % 200],
      limit: 100,
    }),
  );
  const listMembers = await measure("ListGroupMembers (page of 100)", (i) =>
    groups.listGroupMembers({ organizationId, groupId: groupIds[i % groupIds.length], limit: 100 }),
  );
  await pool.end();

  const results = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    seconds: SECONDS,
    inFlight: IN_FLIGHT,
    results: [rawTx, trivial, addRemove, check, listFor, listMembers],
    ratios: {
      addRemoveVsRawTransaction: addRemove.perSecond / rawTx.perSecond,
      checkVsTrivialRpc: check.perSecond / trivial.perSecond,
      listGroupsForMembershipVsTrivialRpc: listFor.perSecond / trivial.perSecond,
    },
  };
  console.log(results.ratios);
  writeFileSync("bench/results/capacity.json", JSON.stringify(results, null, 2) + "\n");
} finally {
  await server.kill("SIGTERM");
  await db.drop();
}
