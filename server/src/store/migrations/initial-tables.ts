/**
 * The tables the initial migrations (MySQL and SQLite) create, children before
 * parents: the order their down() drops them in. Frozen with those migrations;
 * later migrations list their own tables.
 */
export const INITIAL_TABLES_IN_DROP_ORDER = [
  "idempotency_keys",
  "deletion_jobs",
  "events",
  "group_memberships",
  "org_groups",
  "organization_memberships",
  "organizations",
];
