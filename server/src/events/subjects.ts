/**
 * Subject of an event: `<prefix>.<organization_id>.<type>`, e.g.
 * `groups.v1.org_01H….group.member_added`. Since types contain a dot,
 * `<prefix>.*.group.>` matches every event and `<prefix>.<org>.>` one
 * organization's.
 */
export const subjectOf = (prefix: string, organizationId: string, type: string): string =>
  `${prefix}.${organizationId}.${type}`;

/** The stream's subject filter. */
export const streamSubjects = (prefix: string): string => `${prefix}.>`;
