/**
 * The domain's objects. Plain data, no protocol or storage types; the store
 * maps rows to these and rpc/ maps these to protobuf messages.
 */
export interface Organization {
  id: string;
  name: string;
  externalId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export const MEMBERSHIP_STATUSES = ["active", "inactive", "pending"] as const;
export type MembershipStatus = (typeof MEMBERSHIP_STATUSES)[number];

export interface Membership {
  id: string;
  organizationId: string;
  userId: string;
  status: MembershipStatus;
  createdAt: Date;
  updatedAt: Date;
}

export interface Group {
  id: string;
  organizationId: string;
  name: string;
  description: string | null;
  memberCount: number;
  /** Bumped on every change of name or description; the etag is derived from it. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Opaque concurrency token for a group's name and description. */
export const etagOf = (group: Pick<Group, "version">): string => `v${group.version}`;

export type SortOrder = "asc" | "desc";

/** A validated page request: `before` and `after` are mutually exclusive ids. */
export interface PageRequest {
  limit: number;
  before?: string;
  after?: string;
  order: SortOrder;
}

/** One page of a List plus the cursors of its neighbours ("" = none). */
export interface Page<T> {
  items: T[];
  before: string;
  after: string;
}
