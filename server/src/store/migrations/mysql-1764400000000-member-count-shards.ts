import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Member counts as org_groups.member_count plus a few delta rows per group.
 * A change to a group's members adds its delta to one of the group's rows,
 * picked at random, instead of updating the group row: concurrent changes to
 * one hot group then take different row locks, and the count stays exact
 * (the sum of committed rows).
 */
export class MemberCountShards1764400000000 implements MigrationInterface {
  name = "MemberCountShards1764400000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE group_member_counts (
      group_id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      shard TINYINT UNSIGNED NOT NULL,
      delta BIGINT NOT NULL,
      PRIMARY KEY (group_id, shard)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  }

  async down(q: QueryRunner): Promise<void> {
    // Fold the deltas back into the groups before dropping them.
    await q.query(`UPDATE org_groups g
      JOIN (SELECT group_id, SUM(delta) AS d FROM group_member_counts GROUP BY group_id) c
        ON c.group_id = g.id
      SET g.member_count = g.member_count + c.d`);
    await q.query("DROP TABLE group_member_counts");
  }
}
