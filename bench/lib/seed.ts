import mysql from "mysql2/promise";
import { ids, seededMemberCount, strideOf, type Dataset } from "./dataset.js";

export interface SeedReport {
  seconds: number;
  rows: Record<string, number>;
  /** Seconds per step, in order. */
  steps: { step: string; seconds: number }[];
  tableMegabytes: Record<string, number>;
}

const AT = "'2026-01-01 00:00:00.000'";
const ROWS_PER_INSERT = 5_000;

/**
 * Seeds the data set straight into the (migrated, empty) database with
 * multi-row INSERTs of 5,000 rows, in primary-key order, two connections in
 * parallel, foreign-key checks off for these sessions only (the rows are
 * consistent by construction). member_count is exact; no events are written
 * for seeded rows (the outbox only carries changes made through the API).
 */
export async function seed(databaseUrl: string, d: Dataset): Promise<SeedReport> {
  const pool = mysql.createPool({
    uri: databaseUrl,
    connectionLimit: 2,
    multipleStatements: false,
  });
  pool.on("connection", (c) => {
    c.query("SET SESSION foreign_key_checks = 0, unique_checks = 0");
  });
  const started = performance.now();
  const steps: SeedReport["steps"] = [];
  const step = async (name: string, work: () => Promise<unknown>) => {
    const t = performance.now();
    await work();
    steps.push({ step: name, seconds: round((performance.now() - t) / 1000) });
    console.log(`  seed: ${name} ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };
  const insert = async (table: string, columns: string, rows: Iterable<string>) => {
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const sql = `INSERT INTO ${table} (${columns}) VALUES ${batch.join(",")}`;
      batch = [];
      // The two parallel inserters can deadlock on gap locks; a statement that lost is rolled back whole.
      for (let attempt = 1; ; attempt++) {
        try {
          await pool.query(sql);
          return;
        } catch (err) {
          const e = err as { errno?: number; message?: string };
          if (e.errno === 1213 && attempt < 10) continue;
          throw new Error(`seeding ${table}: ${String(e.message).slice(0, 300)}`);
        }
      }
    };
    for (const row of rows) {
      batch.push(row);
      if (batch.length >= ROWS_PER_INSERT) await flush();
    }
    await flush();
  };
  const memberColumns = "id, organization_id, user_id, status, created_at, updated_at";
  const linkColumns = "group_id, organization_membership_id, created_at";
  try {
    await step("organizations and groups", async () => {
      await insert("organizations", "id, name, external_id, created_at, updated_at, deleted_at", [
        `('${ids.orgA}', 'Bench A', NULL, ${AT}, ${AT}, NULL)`,
        `('${ids.orgB}', 'Bench B (one huge group)', NULL, ${AT}, ${AT}, NULL)`,
      ]);
      const groupColumns =
        "id, organization_id, name, description, member_count, version, created_at, updated_at, deleted_at";
      await insert(
        "org_groups",
        groupColumns,
        (function* () {
          for (let g = 0; g < d.groups; g++)
            yield `('${ids.group(g)}', '${ids.orgA}', 'Group ${g}', NULL, ${seededMemberCount(d, g)}, 1, ${AT}, ${AT}, NULL)`;
        })(),
      );
      await insert("org_groups", groupColumns, [
        `('${ids.bigGroup}', '${ids.orgB}', 'Everyone', NULL, ${d.bigGroupMembers}, 1, ${AT}, ${AT}, NULL)`,
      ]);
    });
    await step("memberships", () =>
      Promise.all([
        insert(
          "organization_memberships",
          memberColumns,
          (function* () {
            for (let i = 0; i < d.memberships; i++)
              yield `('${ids.memberA(i)}', '${ids.orgA}', '${ids.userA(i)}', 'active', ${AT}, ${AT})`;
          })(),
        ),
        insert(
          "organization_memberships",
          memberColumns,
          (function* () {
            for (let i = 0; i < d.bigGroupMembers; i++)
              yield `('${ids.memberB(i)}', '${ids.orgB}', '${ids.userB(i)}', 'active', ${AT}, ${AT})`;
          })(),
        ),
      ]),
    );
    await step("group memberships", () =>
      Promise.all([
        insert(
          "group_memberships",
          linkColumns,
          (function* () {
            const s = strideOf(d);
            for (let g = 0; g < d.groups; g++) {
              const group = ids.group(g);
              for (let i = g % s; i < d.memberships; i += s)
                yield `('${group}', '${ids.memberA(i)}', ${AT})`;
            }
          })(),
        ),
        insert(
          "group_memberships",
          linkColumns,
          (function* () {
            for (let i = 0; i < d.bigGroupMembers; i++)
              yield `('${ids.bigGroup}', '${ids.memberB(i)}', ${AT})`;
          })(),
        ),
      ]),
    );
    await step("ANALYZE TABLE", () =>
      pool.query(
        "ANALYZE TABLE organizations, organization_memberships, org_groups, group_memberships",
      ),
    );
    const [sizes] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT table_name AS t, (data_length + index_length) / 1048576 AS mb FROM information_schema.tables
       WHERE table_schema = DATABASE()`,
    );
    const linkRows = d.memberships * d.groupsPerMember + d.bigGroupMembers;
    return {
      seconds: round((performance.now() - started) / 1000),
      rows: {
        organizations: 2,
        organization_memberships: d.memberships + d.bigGroupMembers,
        org_groups: d.groups + 1,
        group_memberships: linkRows,
      },
      steps,
      tableMegabytes: Object.fromEntries(sizes.map((r) => [r.t as string, round(Number(r.mb))])),
    };
  } finally {
    await pool.end();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
