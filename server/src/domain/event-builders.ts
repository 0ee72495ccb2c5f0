import type { EventCause, EventType, NewEvent } from "./events.js";
import { newId } from "./ids.js";
import type { Group, Membership } from "./model.js";

/** A group.created / group.updated / group.deleted event carrying the whole group. */
export function groupEvent(
  type: Extract<EventType, "group.created" | "group.updated" | "group.deleted">,
  group: Group,
  cause: EventCause,
  previous?: { name?: string; description?: string | null },
): NewEvent {
  return {
    id: newId("event"),
    type,
    organizationId: group.organizationId,
    groupId: group.id,
    cause,
    createdAt: new Date(),
    data: previous ? { kind: "group", group, previous } : { kind: "group", group },
  };
}

/** A group.member_added / group.member_removed event. */
export function memberEvent(
  type: Extract<EventType, "group.member_added" | "group.member_removed">,
  group: Pick<Group, "id" | "organizationId">,
  membership: Pick<Membership, "id" | "userId">,
  cause: EventCause,
): NewEvent {
  return {
    id: newId("event"),
    type,
    organizationId: group.organizationId,
    groupId: group.id,
    cause,
    createdAt: new Date(),
    data: {
      kind: "member",
      groupId: group.id,
      organizationMembershipId: membership.id,
      organizationId: group.organizationId,
      userId: membership.userId,
    },
  };
}
