import type { MigrationInterface, QueryRunner } from "typeorm";

/** Group memberships without their own organization id (see the MySQL twin of this migration). */
export class SqliteLinksWithoutOrganization1764600000000 implements MigrationInterface {
  name = "SqliteLinksWithoutOrganization1764600000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query("DROP INDEX ix_group_memberships_org");
    await q.query("ALTER TABLE group_memberships DROP COLUMN organization_id");
  }

  async down(q: QueryRunner): Promise<void> {
    // SQLite adds a NOT NULL column only with a default; every row gets its value next.
    await q.query(
      "ALTER TABLE group_memberships ADD COLUMN organization_id VARCHAR(32) NOT NULL DEFAULT ''",
    );
    await q.query(`UPDATE group_memberships SET organization_id =
      (SELECT g.organization_id FROM org_groups g WHERE g.id = group_memberships.group_id)`);
    await q.query("CREATE INDEX ix_group_memberships_org ON group_memberships (organization_id)");
  }
}
