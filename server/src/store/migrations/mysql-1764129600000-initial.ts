import type { MigrationInterface, QueryRunner } from "typeorm";
import { INITIAL_TABLES_IN_DROP_ORDER } from "./initial-tables.js";

/**
 * Initial MySQL/MariaDB schema. Ids are ASCII with a binary collation (exact,
 * compact keys); text is utf8mb4. Every list and lookup has an index that
 * serves it as a keyset range scan: (scope, id) composites, because MariaDB
 * otherwise picks plans that scan half a large table for one page.
 */
export class Initial1764129600000 implements MigrationInterface {
  name = "Initial1764129600000";

  async up(q: QueryRunner): Promise<void> {
    const id = "VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin";
    const table = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
    await q.query(`CREATE TABLE organizations (
      id ${id} NOT NULL,
      name VARCHAR(256) NOT NULL,
      external_id VARCHAR(128) NULL,
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      deleted_at DATETIME(3) NULL,
      PRIMARY KEY (id),
      UNIQUE KEY uq_organizations_external_id (external_id)
    ) ${table}`);
    await q.query(`CREATE TABLE organization_memberships (
      id ${id} NOT NULL,
      organization_id ${id} NOT NULL,
      user_id VARCHAR(128) NOT NULL,
      status VARCHAR(16) CHARACTER SET ascii NOT NULL,
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      PRIMARY KEY (id),
      UNIQUE KEY uq_memberships_org_user (organization_id, user_id),
      KEY ix_memberships_org_id (organization_id, id),
      KEY ix_memberships_user_id (user_id, id),
      CONSTRAINT fk_memberships_org FOREIGN KEY (organization_id) REFERENCES organizations (id)
    ) ${table}`);
    await q.query(`CREATE TABLE org_groups (
      id ${id} NOT NULL,
      organization_id ${id} NOT NULL,
      name VARCHAR(256) NOT NULL,
      description VARCHAR(150) NULL,
      member_count INT UNSIGNED NOT NULL DEFAULT 0,
      version INT UNSIGNED NOT NULL DEFAULT 1,
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      deleted_at DATETIME(3) NULL,
      PRIMARY KEY (id),
      KEY ix_groups_org_id (organization_id, id),
      CONSTRAINT fk_groups_org FOREIGN KEY (organization_id) REFERENCES organizations (id)
    ) ${table}`);
    await q.query(`CREATE TABLE group_memberships (
      group_id ${id} NOT NULL,
      organization_membership_id ${id} NOT NULL,
      organization_id ${id} NOT NULL,
      created_at DATETIME(3) NOT NULL,
      PRIMARY KEY (group_id, organization_membership_id),
      KEY ix_group_memberships_member (organization_membership_id, group_id),
      KEY ix_group_memberships_org (organization_id),
      CONSTRAINT fk_group_memberships_group FOREIGN KEY (group_id) REFERENCES org_groups (id),
      CONSTRAINT fk_group_memberships_member FOREIGN KEY (organization_membership_id)
        REFERENCES organization_memberships (id)
    ) ${table}`);
    // The transactional outbox and the event log in one table. outbox_seq is
    // the insert order; `sequence` is given by the single relay leader, in one
    // transaction per batch, so readers never see a gap filled in later.
    await q.query(`CREATE TABLE events (
      outbox_seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      sequence BIGINT UNSIGNED NULL,
      id ${id} NOT NULL,
      type VARCHAR(64) CHARACTER SET ascii NOT NULL,
      organization_id ${id} NOT NULL,
      group_id ${id} NOT NULL,
      cause VARCHAR(16) CHARACTER SET ascii NOT NULL,
      payload LONGTEXT NOT NULL,
      created_at DATETIME(3) NOT NULL,
      published_at DATETIME(3) NULL,
      PRIMARY KEY (outbox_seq),
      UNIQUE KEY uq_events_id (id),
      UNIQUE KEY uq_events_sequence (sequence),
      KEY ix_events_unpublished (published_at, sequence),
      KEY ix_events_org_sequence (organization_id, sequence),
      KEY ix_events_created_at (created_at)
    ) ${table}`);
    // Work list of the reaper: deletions accepted by the API and not finished yet.
    // A separate small table, because an index on deleted_at misleads MariaDB's
    // planner into "deleted_at IS NULL" ref scans for ordinary reads.
    await q.query(`CREATE TABLE deletion_jobs (
      kind VARCHAR(16) CHARACTER SET ascii NOT NULL,
      target_id ${id} NOT NULL,
      requested_at DATETIME(3) NOT NULL,
      PRIMARY KEY (kind, target_id)
    ) ${table}`);
    await q.query(`CREATE TABLE idempotency_keys (
      organization_id ${id} NOT NULL,
      request_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      request_hash CHAR(64) CHARACTER SET ascii NOT NULL,
      response LONGTEXT NOT NULL,
      created_at DATETIME(3) NOT NULL,
      PRIMARY KEY (organization_id, request_id),
      KEY ix_idempotency_keys_created_at (created_at)
    ) ${table}`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of INITIAL_TABLES_IN_DROP_ORDER) await q.query(`DROP TABLE ${t}`);
  }
}
