import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Group } from "../gen/groups/v1/groups_pb.js";
import type { Event } from "../gen/groups/v1/events_pb.js";

/** The WorkOS-style JSON envelope of an event, for code written against WorkOS webhooks. */
export interface WorkOSEvent {
  object: "event";
  id: string;
  event: string;
  data: Record<string, unknown>;
  created_at: string;
}

const iso = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : null);

function groupObject(g: Group | undefined): Record<string, unknown> {
  return {
    object: "group",
    id: g?.id ?? "",
    organization_id: g?.organizationId ?? "",
    name: g?.name ?? "",
    description: g?.description ? g.description : null,
    member_count: Number(g?.memberCount ?? 0n),
    created_at: iso(g?.createdAt),
    updated_at: iso(g?.updatedAt),
  };
}

/** Renders a `groups.v1.Event` as `{ object: "event", id, event, data, created_at }`. */
export function toWorkOSEvent(e: Event): WorkOSEvent {
  let data: Record<string, unknown> = {};
  if (e.data.case === "group") {
    data = groupObject(e.data.value.group);
    const previous = e.data.value.previous;
    if (previous) {
      const attrs: Record<string, unknown> = {};
      if (previous.name !== undefined) attrs.name = previous.name;
      if (previous.description !== undefined) attrs.description = previous.description || null;
      data.previous_attributes = attrs;
    }
  } else if (e.data.case === "member") {
    const m = e.data.value;
    data = {
      object: "group_membership",
      group_id: m.groupId,
      organization_membership_id: m.organizationMembershipId,
      organization_id: m.organizationId,
      user_id: m.userId,
    };
  }
  return { object: "event", id: e.id, event: e.type, data, created_at: iso(e.createdAt) ?? "" };
}
