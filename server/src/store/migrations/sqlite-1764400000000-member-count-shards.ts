import type { MigrationInterface, QueryRunner } from "typeorm";

/** Member count delta rows (see the MySQL twin of this migration). */
export class SqliteMemberCountShards1764400000000 implements MigrationInterface {
  name = "SqliteMemberCountShards1764400000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE group_member_counts (
      group_id VARCHAR(32) NOT NULL,
      shard INTEGER NOT NULL,
      delta INTEGER NOT NULL,
      PRIMARY KEY (group_id, shard))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE org_groups SET member_count = member_count +
      COALESCE((SELECT SUM(delta) FROM group_member_counts c WHERE c.group_id = org_groups.id), 0)`);
    await q.query("DROP TABLE group_member_counts");
  }
}
