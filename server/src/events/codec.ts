import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  EventCause,
  EventSchema,
  type Event,
} from "../../../clients/src/gen/groups/v1/events_pb.js";
import type { RecordedEvent } from "../domain/events.js";
import { toGroup } from "../rpc/convert.js";

/** A recorded event as the `groups.v1.Event` message (the API's and NATS's payload). */
export function toEventMessage(e: RecordedEvent): Event {
  const data = e.data;
  return create(EventSchema, {
    id: e.id,
    type: e.type,
    organizationId: e.organizationId,
    createdAt: timestampFromDate(e.createdAt),
    sequence: BigInt(e.sequence),
    cause: e.cause === "system" ? EventCause.SYSTEM : EventCause.API,
    data:
      data.kind === "group"
        ? {
            case: "group",
            value: {
              group: toGroup(data.group),
              previous: data.previous
                ? {
                    name: data.previous.name,
                    description:
                      "description" in data.previous
                        ? (data.previous.description ?? "")
                        : undefined,
                  }
                : undefined,
            },
          }
        : {
            case: "member",
            value: {
              groupId: data.groupId,
              organizationMembershipId: data.organizationMembershipId,
              organizationId: data.organizationId,
              userId: data.userId,
            },
          },
  });
}

export type PayloadFormat = "binary" | "json";

export const CONTENT_TYPE: Record<PayloadFormat, string> = {
  binary: "application/protobuf",
  json: "application/json",
};

/** The NATS message body: protobuf binary by default, canonical protobuf JSON when configured. */
export function encodeEvent(message: Event, format: PayloadFormat): Uint8Array {
  return format === "json"
    ? new TextEncoder().encode(toJsonString(EventSchema, message))
    : toBinary(EventSchema, message);
}
