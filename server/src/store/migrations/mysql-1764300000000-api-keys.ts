import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Service API keys. Only a SHA-256 of the secret is stored: the secret is 256
 * random bits, so a fast hash is enough (no password stretching needed) and a
 * database dump reveals no usable key.
 */
export class ApiKeys1764300000000 implements MigrationInterface {
  name = "ApiKeys1764300000000";

  async up(q: QueryRunner): Promise<void> {
    const id = "VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin";
    await q.query(`CREATE TABLE api_keys (
      id ${id} NOT NULL,
      name VARCHAR(128) NOT NULL,
      secret_hash CHAR(64) CHARACTER SET ascii NOT NULL,
      organization_id ${id} NULL,
      permissions VARCHAR(16) CHARACTER SET ascii NOT NULL,
      created_at DATETIME(3) NOT NULL,
      revoked_at DATETIME(3) NULL,
      PRIMARY KEY (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query("DROP TABLE api_keys");
  }
}
