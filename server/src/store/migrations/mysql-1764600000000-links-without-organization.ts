import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Group memberships without their own copy of the organization id. The
 * column and its index served one statement, the organization reaper's
 * chunked delete, which now walks the organization's groups instead; every
 * added link paid for them with a third secondary-index entry (a random leaf
 * page per insert, competing with the read indexes for the buffer pool) and
 * 29 more bytes in the clustered row.
 */
export class LinksWithoutOrganization1764600000000 implements MigrationInterface {
  name = "LinksWithoutOrganization1764600000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      "ALTER TABLE group_memberships DROP INDEX ix_group_memberships_org, DROP COLUMN organization_id",
    );
  }

  async down(q: QueryRunner): Promise<void> {
    const id = "VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin";
    await q.query(
      `ALTER TABLE group_memberships ADD COLUMN organization_id ${id} NULL AFTER organization_membership_id`,
    );
    await q.query(`UPDATE group_memberships gm JOIN org_groups g ON g.id = gm.group_id
      SET gm.organization_id = g.organization_id`);
    await q.query(
      `ALTER TABLE group_memberships MODIFY organization_id ${id} NOT NULL, ` +
        "ADD KEY ix_group_memberships_org (organization_id)",
    );
  }
}
