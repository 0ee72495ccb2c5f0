import type { MigrationInterface, QueryRunner } from "typeorm";

/** Service API keys (see the MySQL twin of this migration). */
export class SqliteApiKeys1764300000000 implements MigrationInterface {
  name = "SqliteApiKeys1764300000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE api_keys (
      id VARCHAR(32) NOT NULL PRIMARY KEY,
      name VARCHAR(128) NOT NULL,
      secret_hash CHAR(64) NOT NULL,
      organization_id VARCHAR(32) NULL,
      permissions VARCHAR(16) NOT NULL,
      created_at DATETIME NOT NULL,
      revoked_at DATETIME NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query("DROP TABLE api_keys");
  }
}
