import type { MigrationInterface, QueryRunner } from "typeorm";
import { INITIAL_TABLES_IN_DROP_ORDER } from "./initial-tables.js";

/**
 * The embedded (SQLite) schema: the same tables, columns, keys and index
 * names as the MySQL one, so the store's queries and index hints work on both.
 * Times are UTC text 'YYYY-MM-DD HH:MM:SS.mmm', which sorts chronologically.
 */
export class SqliteInitial1764129600000 implements MigrationInterface {
  name = "SqliteInitial1764129600000";

  async up(q: QueryRunner): Promise<void> {
    const statements = [
      `CREATE TABLE organizations (
        id VARCHAR(32) NOT NULL PRIMARY KEY,
        name VARCHAR(256) NOT NULL,
        external_id VARCHAR(128) NULL,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL,
        deleted_at DATETIME NULL)`,
      `CREATE UNIQUE INDEX uq_organizations_external_id ON organizations (external_id)`,
      `CREATE TABLE organization_memberships (
        id VARCHAR(32) NOT NULL PRIMARY KEY,
        organization_id VARCHAR(32) NOT NULL REFERENCES organizations (id),
        user_id VARCHAR(128) NOT NULL,
        status VARCHAR(16) NOT NULL,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL)`,
      `CREATE UNIQUE INDEX uq_memberships_org_user ON organization_memberships (organization_id, user_id)`,
      `CREATE INDEX ix_memberships_org_id ON organization_memberships (organization_id, id)`,
      `CREATE INDEX ix_memberships_user_id ON organization_memberships (user_id, id)`,
      `CREATE TABLE org_groups (
        id VARCHAR(32) NOT NULL PRIMARY KEY,
        organization_id VARCHAR(32) NOT NULL REFERENCES organizations (id),
        name VARCHAR(256) NOT NULL,
        description VARCHAR(150) NULL,
        member_count INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 1,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL,
        deleted_at DATETIME NULL)`,
      `CREATE INDEX ix_groups_org_id ON org_groups (organization_id, id)`,
      `CREATE TABLE group_memberships (
        group_id VARCHAR(32) NOT NULL REFERENCES org_groups (id),
        organization_membership_id VARCHAR(32) NOT NULL REFERENCES organization_memberships (id),
        organization_id VARCHAR(32) NOT NULL,
        created_at DATETIME NOT NULL,
        PRIMARY KEY (group_id, organization_membership_id))`,
      `CREATE INDEX ix_group_memberships_member ON group_memberships (organization_membership_id, group_id)`,
      `CREATE INDEX ix_group_memberships_org ON group_memberships (organization_id)`,
      `CREATE TABLE events (
        outbox_seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sequence INTEGER NULL,
        id VARCHAR(32) NOT NULL,
        type VARCHAR(64) NOT NULL,
        organization_id VARCHAR(32) NOT NULL,
        group_id VARCHAR(32) NOT NULL,
        cause VARCHAR(16) NOT NULL,
        payload TEXT NOT NULL,
        created_at DATETIME NOT NULL,
        published_at DATETIME NULL)`,
      `CREATE UNIQUE INDEX uq_events_id ON events (id)`,
      `CREATE UNIQUE INDEX uq_events_sequence ON events (sequence)`,
      `CREATE INDEX ix_events_unpublished ON events (published_at, sequence)`,
      `CREATE INDEX ix_events_org_sequence ON events (organization_id, sequence)`,
      `CREATE INDEX ix_events_created_at ON events (created_at)`,
      `CREATE TABLE deletion_jobs (
        kind VARCHAR(16) NOT NULL,
        target_id VARCHAR(32) NOT NULL,
        requested_at DATETIME NOT NULL,
        PRIMARY KEY (kind, target_id))`,
      `CREATE TABLE idempotency_keys (
        organization_id VARCHAR(32) NOT NULL,
        request_id VARCHAR(128) NOT NULL,
        request_hash VARCHAR(64) NOT NULL,
        response TEXT NOT NULL,
        created_at DATETIME NOT NULL,
        PRIMARY KEY (organization_id, request_id))`,
      `CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at)`,
    ];
    for (const sql of statements) await q.query(sql);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of INITIAL_TABLES_IN_DROP_ORDER) await q.query(`DROP TABLE ${t}`);
  }
}
