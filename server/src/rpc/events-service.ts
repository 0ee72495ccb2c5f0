import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { EventsService } from "../../../clients/src/gen/groups/v1/events_pb.js";
import type { EventFeed } from "../domain/event-feed.js";
import { toEventMessage } from "../events/codec.js";
import { organizationScope, type Handlers } from "./pipeline.js";

/** google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const TIMESTAMP_MIN_SECONDS = -62_135_596_800n;
const TIMESTAMP_MAX_SECONDS = 253_402_300_799n;

/**
 * Events carry millisecond times. Rounding a bound up keeps both ends exact:
 * an event at T is before an end of T+0.4 ms and before a start of T+0.4 ms.
 * A Timestamp outside its own definition becomes an invalid Date, which the
 * domain refuses by field name.
 */
const ceilToMillisecond = (t: Timestamp): Date =>
  t.seconds < TIMESTAMP_MIN_SECONDS ||
  t.seconds > TIMESTAMP_MAX_SECONDS ||
  !Number.isInteger(t.nanos) ||
  t.nanos < 0 ||
  t.nanos > 999_999_999
    ? new Date(NaN)
    : new Date(Number(t.seconds) * 1000 + Math.ceil(t.nanos / 1e6));

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
