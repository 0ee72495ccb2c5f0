import type { Group } from "./model.js";

/**
 * The `group.*` events, as the domain records them in the outbox. The relay
 * turns them into `groups.v1.Event` messages.
 */
export const EVENT_TYPES = [
  "group.created",
  "group.updated",
  "group.deleted",
  "group.member_added",
  "group.member_removed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What caused an event: a direct API call, or a cascade the system ran. */
export type EventCause = "api" | "system";

export interface GroupEventData {
  kind: "group";
  group: Group;
  /** group.updated only: the previous values of the fields that changed. */
  previous?: { name?: string; description?: string | null };
}

export interface MemberEventData {
  kind: "member";
  groupId: string;
  organizationMembershipId: string;
  organizationId: string;
  userId: string;
}

export type EventData = GroupEventData | MemberEventData;

/** An event about to be written to the outbox (the store assigns `sequence`). */
export interface NewEvent {
  id: string;
  type: EventType;
  organizationId: string;
  groupId: string;
  cause: EventCause;
  createdAt: Date;
  data: EventData;
}

/** An event as stored: `sequence` is unique and increases in recording order. */
export interface RecordedEvent extends NewEvent {
  /** Position in the outbox (insert order); internal. */
  outboxSeq: string;
  /** Decimal; assigned by the relay leader, so readers never see a gap filled later. */
  sequence: string;
}

export const isEventType = (t: string): t is EventType =>
  (EVENT_TYPES as readonly string[]).includes(t);
