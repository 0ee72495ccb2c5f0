import { EntitySchema } from "typeorm";
import type { Group, Membership, Organization } from "../domain/model.js";

/**
 * Table mappings. EntitySchema (not decorators) keeps the domain objects plain
 * and needs no reflection metadata. The schema itself is owned by the
 * migrations in ./migrations; these only map columns to fields.
 */
const id = (name: string) => ({ type: "varchar" as const, length: 32, name });
const timestamp = (name: string, nullable = false) => ({
  type: "datetime" as const,
  precision: 3,
  name,
  nullable,
});

export interface OrganizationRow extends Organization {
  /** Set when DeleteOrganization ran; the reaper removes the rest in chunks. */
  deletedAt: Date | null;
}

export const OrganizationEntity = new EntitySchema<OrganizationRow>({
  name: "Organization",
  tableName: "organizations",
  columns: {
    id: { ...id("id"), primary: true },
    name: { type: "varchar", length: 256 },
    externalId: { type: "varchar", length: 128, name: "external_id", nullable: true },
    createdAt: timestamp("created_at"),
    updatedAt: timestamp("updated_at"),
    deletedAt: timestamp("deleted_at", true),
  },
});

export const MembershipEntity = new EntitySchema<Membership>({
  name: "Membership",
  tableName: "organization_memberships",
  columns: {
    id: { ...id("id"), primary: true },
    organizationId: id("organization_id"),
    userId: { type: "varchar", length: 128, name: "user_id" },
    status: { type: "varchar", length: 16 },
    createdAt: timestamp("created_at"),
    updatedAt: timestamp("updated_at"),
  },
});

export interface GroupRow extends Group {
  /** Set when DeleteGroup ran; the reaper removes its group memberships in chunks. */
  deletedAt: Date | null;
}

export const GroupEntity = new EntitySchema<GroupRow>({
  name: "Group",
  tableName: "org_groups",
  columns: {
    id: { ...id("id"), primary: true },
    organizationId: id("organization_id"),
    name: { type: "varchar", length: 256 },
    description: { type: "varchar", length: 150, nullable: true },
    memberCount: { type: "int", unsigned: true, name: "member_count" },
    version: { type: "int", unsigned: true },
    createdAt: timestamp("created_at"),
    updatedAt: timestamp("updated_at"),
    deletedAt: timestamp("deleted_at", true),
  },
});

export interface GroupMembershipRow {
  groupId: string;
  organizationMembershipId: string;
  createdAt: Date;
}

export const GroupMembershipEntity = new EntitySchema<GroupMembershipRow>({
  name: "GroupMembership",
  tableName: "group_memberships",
  columns: {
    groupId: { ...id("group_id"), primary: true },
    organizationMembershipId: { ...id("organization_membership_id"), primary: true },
    createdAt: timestamp("created_at"),
  },
});

export interface EventRow {
  /** Insert order (AUTO_INCREMENT). */
  outboxSeq: string;
  /** Order given by the relay leader; null until sequenced. */
  sequence: string | null;
  id: string;
  type: string;
  organizationId: string;
  groupId: string;
  cause: string;
  /** JSON of the domain's EventData. */
  payload: string;
  createdAt: Date;
}

export const EventEntity = new EntitySchema<EventRow>({
  name: "Event",
  tableName: "events",
  columns: {
    outboxSeq: {
      type: "bigint",
      unsigned: true,
      primary: true,
      generated: "increment",
      name: "outbox_seq",
    },
    sequence: { type: "bigint", unsigned: true, nullable: true },
    id: id("id"),
    type: { type: "varchar", length: 64 },
    organizationId: id("organization_id"),
    groupId: id("group_id"),
    cause: { type: "varchar", length: 16 },
    // LONGTEXT in the MySQL schema; the migrations own the real column types.
    payload: { type: "text" },
    createdAt: timestamp("created_at"),
  },
});

export interface IdempotencyKeyRow {
  organizationId: string;
  requestId: string;
  /** SHA-256 of the request's parameters: a replay with other parameters is refused. */
  requestHash: string;
  /** JSON of the first response (a Group). */
  response: string;
  createdAt: Date;
}

export const IdempotencyKeyEntity = new EntitySchema<IdempotencyKeyRow>({
  name: "IdempotencyKey",
  tableName: "idempotency_keys",
  columns: {
    organizationId: { ...id("organization_id"), primary: true },
    requestId: { type: "varchar", length: 128, name: "request_id", primary: true },
    requestHash: { type: "varchar", length: 64, name: "request_hash" },
    response: { type: "text" },
    createdAt: timestamp("created_at"),
  },
});

export type DeletionKind = "group" | "organization";

export interface DeletionJobRow {
  kind: DeletionKind;
  targetId: string;
  requestedAt: Date;
}

export const DeletionJobEntity = new EntitySchema<DeletionJobRow>({
  name: "DeletionJob",
  tableName: "deletion_jobs",
  columns: {
    kind: { type: "varchar", length: 16, primary: true },
    targetId: { ...id("target_id"), primary: true },
    requestedAt: timestamp("requested_at"),
  },
});

export interface ApiKeyRow {
  id: string;
  name: string;
  /** SHA-256 (hex) of the secret part of the key. */
  secretHash: string;
  /** Null for a deployment-wide key. */
  organizationId: string | null;
  permissions: "read" | "read_write";
  createdAt: Date;
  revokedAt: Date | null;
}

export const ApiKeyEntity = new EntitySchema<ApiKeyRow>({
  name: "ApiKey",
  tableName: "api_keys",
  columns: {
    id: { ...id("id"), primary: true },
    name: { type: "varchar", length: 128 },
    secretHash: { type: "varchar", length: 64, name: "secret_hash" },
    organizationId: { ...id("organization_id"), nullable: true },
    permissions: { type: "varchar", length: 16 },
    createdAt: timestamp("created_at"),
    revokedAt: timestamp("revoked_at", true),
  },
});

export const ENTITIES = [
  ApiKeyEntity,
  DeletionJobEntity,
  OrganizationEntity,
  MembershipEntity,
  GroupEntity,
  GroupMembershipEntity,
  EventEntity,
  IdempotencyKeyEntity,
];
