import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { EventsService } from "../../../clients/src/gen/groups/v1/events_pb.js";
import type { EventFeed } from "../domain/event-feed.js";
import { toEventMessage } from "../events/codec.js";
import { organizationScope, type Handlers } from "./pipeline.js";

/**
 * Events carry millisecond times. Rounding a bound up keeps both ends exact:
 * an event at T is before an end of T+0.4 ms and before a start of T+0.4 ms.
 */
const ceilToMillisecond = (t: Timestamp): Date =>
  new Date(Number(t.seconds) * 1000 + Math.ceil(t.nanos / 1e6));

/** groups.v1.EventsService: decode → domain → shape. */
export function eventsHandlers(feed: EventFeed): Handlers<typeof EventsService> {
  return {
    async listEvents(req, ctx) {
      const page = await feed.list({
        types: req.types,
        organizationId: req.organizationId,
        within: organizationScope(ctx),
        rangeStart: req.rangeStart ? ceilToMillisecond(req.rangeStart) : undefined,
        rangeEnd: req.rangeEnd ? ceilToMillisecond(req.rangeEnd) : undefined,
        after: req.after,
        limit: req.limit,
      });
      return {
        events: page.events.map(toEventMessage),
        listMetadata: { before: "", after: page.after },
      };
    },
    async *streamEvents(req, ctx) {
      const { filter, from } = await feed.openStream({
        types: req.types,
        organizationId: req.organizationId,
        within: organizationScope(ctx),
        after: req.after,
      });
      for await (const event of feed.stream(filter, from, ctx.signal)) {
        yield { event: toEventMessage(event) };
      }
    },
  };
}
