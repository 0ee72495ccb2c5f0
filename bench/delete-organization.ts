/**
 * Scale check for DeleteOrganization: seeds an organization with 1,000,000
 * group memberships (10 groups × 100,000 memberships) straight into MariaDB,
 * deletes it over gRPC, and times the RPC and the background cleanup.
 * Run: npx tsx bench/delete-organization.ts   (writes bench/results/delete-organization.json)
 */
import { writeFileSync } from "node:fs";
import type { RowDataPacket } from "mysql2/promise";
import { startTestServer } from "../test/support/server.js";

const GROUPS = 10;
const MEMBERS = 100_000;

const t = await startTestServer();
try {
  const { orgs } = t.clients("grpc");
  const sql = t.db.sql;
  const { organization } = await orgs.createOrganization({ name: "Huge" });
  const org = organization!.id;
  const count = async (query: string, params: unknown[] = []) =>
    Number((await sql.query<RowDataPacket[]>(query, params))[0][0].n);

  let started = performance.now();
  // Ids of the right shape: prefix + 26 Crockford digits (all decimal digits here).
  await sql.query(
    `INSERT INTO organization_memberships SELECT CONCAT('om_', LPAD(seq, 26, '0')), ?, CONCAT('u', seq),
       'active', NOW(3), NOW(3) FROM seq_1_to_${MEMBERS}`,
    [org],
  );
  await sql.query(
    `INSERT INTO org_groups SELECT CONCAT('group_', LPAD(seq, 26, '0')), ?, CONCAT('g', seq), NULL, ${MEMBERS}, 1,
       NOW(3), NOW(3), NULL FROM seq_1_to_${GROUPS}`,
    [org],
  );
  for (let g = 1; g <= GROUPS; g++) {
    await sql.query(
      `INSERT INTO group_memberships SELECT CONCAT('group_', LPAD(?, 26, '0')), CONCAT('om_', LPAD(seq, 26, '0')),
         NOW(3) FROM seq_1_to_${MEMBERS}`,
      [g],
    );
  }
  const seedSeconds = (performance.now() - started) / 1000;

  started = performance.now();
  await orgs.deleteOrganization({ organizationId: org });
  const rpcMs = performance.now() - started;
  const visible = await orgs.getOrganization({ organizationId: org }).then(
    () => "still visible",
    (err: { code: number }) => `code ${err.code}`,
  );

  started = performance.now();
  while ((await count("SELECT COUNT(*) AS n FROM organizations WHERE id = ?", [org])) > 0) {
    await new Promise((r) => setTimeout(r, 250));
  }
  const cleanupSeconds = (performance.now() - started) / 1000;
  const result = {
    groupMemberships: GROUPS * MEMBERS,
    seedSeconds,
    deleteRpcMs: rpcMs,
    getOrganizationRightAfter: visible,
    cleanupSeconds,
    groupDeletedEvents: await count(
      "SELECT COUNT(*) AS n FROM events WHERE type = 'group.deleted' AND organization_id = ? AND cause = 'system'",
      [org],
    ),
    groupMembershipsLeft: await count("SELECT COUNT(*) AS n FROM group_memberships"),
  };
  console.log(result);
  writeFileSync("bench/results/delete-organization.json", JSON.stringify(result, null, 2) + "\n");
} finally {
  await t.close();
}
