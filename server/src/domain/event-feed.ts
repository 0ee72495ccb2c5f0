import { once } from "node:events";
import type { EventEmitter } from "node:events";
import type { Database } from "../store/database.js";
import * as store from "../store/events.js";
import { invalidArgument } from "./errors.js";
import { isEventType, type EventType, type RecordedEvent } from "./events.js";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./pagination.js";
import { Violations } from "./validation.js";

export interface FeedFilterInput {
  types: string[];
  organizationId: string;
  /** The caller's organization if it is limited to one: another's events are "not recorded". */
  within?: string;
}

/** What a DATETIME column holds (MariaDB's range; SQLite's text compares only within it). */
const STORABLE_MIN = Date.UTC(1000, 0, 1);
const STORABLE_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * A time bound as the store can compare it. Every event was created inside the
 * storable range, so a bound outside it is moved to the range's edge without
 * changing which events it selects; the driver never sees a date it cannot write.
 */
function storableBound(v: Violations, field: string, bound: Date | undefined): Date | undefined {
  if (bound === undefined) return undefined;
  if (Number.isNaN(bound.getTime())) {
    v.add(field, "must be a valid timestamp (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)");
    return undefined;
  }
  return new Date(Math.min(STORABLE_MAX, Math.max(STORABLE_MIN, bound.getTime())));
}

/**
 * The events API's rules: ListEvents pages and StreamEvents' replay-then-tail.
 * Both read only sequenced events, whose sequence numbers become visible in
 * increasing order, so "everything after N" never misses an event.
 */
export class EventFeed {
  constructor(
    private readonly db: Database,
    /** Emits "sequenced" when this replica's relay gave out new sequence numbers. */
    private readonly sequenced: EventEmitter,
    private readonly pollIntervalMs = 250,
  ) {}

  async list(
    input: FeedFilterInput & { rangeStart?: Date; rangeEnd?: Date; after: string; limit: number },
  ): Promise<{ events: RecordedEvent[]; after: string }> {
    const v = new Violations();
    const filter = this.filter(v, input);
    const rangeStart = storableBound(v, "range_start", input.rangeStart);
    const rangeEnd = storableBound(v, "range_end", input.rangeEnd);
    if (rangeStart && rangeEnd && input.rangeStart! > input.rangeEnd!) {
      v.add("range_end", "must not be before range_start");
    }
    if (!Number.isInteger(input.limit) || input.limit < 0 || input.limit > MAX_PAGE_SIZE) {
      v.add("limit", `must be between 1 and ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE})`);
    }
    v.optionalId("after", "event", input.after);
    v.throwIfAny();
    const limit = input.limit || DEFAULT_PAGE_SIZE;
    const from = input.after
      ? await this.cursor(input.after, input.within, filter.organizationId)
      : "0";
    const rows = await store.eventsAfter(
      this.db.reader,
      { ...filter, rangeStart, rangeEnd },
      from,
      limit + 1,
    );
    const events = rows.slice(0, limit);
    return { events, after: rows.length > limit ? events[events.length - 1].id : "" };
  }

  /** Validates a stream request up front, so a bad one fails before any event is sent. */
  async openStream(
    input: FeedFilterInput & { after: string },
  ): Promise<{ filter: store.EventFilter; from: string }> {
    const v = new Violations();
    const filter = this.filter(v, input);
    v.optionalId("after", "event", input.after);
    v.throwIfAny();
    const from = input.after
      ? await this.cursor(input.after, input.within, filter.organizationId)
      : await store.latestSequence(this.db.reader);
    return { filter, from };
  }

  /** Replays from the position, then follows new events until `signal` aborts. */
  async *stream(
    filter: store.EventFilter,
    from: string,
    signal: AbortSignal,
  ): AsyncGenerator<RecordedEvent> {
    let last = from;
    const batch = 500;
    while (!signal.aborted) {
      const rows = await store.eventsAfter(this.db.reader, filter, last, batch);
      for (const e of rows) {
        yield e;
        last = e.sequence;
      }
      if (rows.length < batch) await this.nextSequenced(signal);
    }
  }

  private nextSequenced(signal: AbortSignal): Promise<unknown> {
    return once(this.sequenced, "sequenced", {
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.pollIntervalMs)]),
    }).catch(() => undefined);
  }

  private filter(v: Violations, input: FeedFilterInput): store.EventFilter {
    const types: EventType[] = [];
    input.types.forEach((t, i) => {
      if (isEventType(t)) types.push(t);
      else v.add(`types[${i}]`, "is not a known event type");
    });
    const organizationId = v.optionalId("organization_id", "organization", input.organizationId);
    return { types, organizationId };
  }

  /**
   * The position an `after` cursor names. An event of another organization than
   * the caller's or the list's is foreign to it (SPEC §4); one of a type the
   * filter leaves out is not, so a consumer may narrow its types and resume.
   */
  private async cursor(
    eventId: string,
    within: string | undefined,
    listed: string | undefined,
  ): Promise<string> {
    const found = await store.sequenceOf(this.db.reader, eventId);
    if (found === undefined || (within !== undefined && found.organizationId !== within))
      throw invalidArgument([{ field: "after", description: "does not name a recorded event" }]);
    if (listed !== undefined && found.organizationId !== listed)
      throw invalidArgument([
        {
          field: "after",
          description: "names an event of another organization than organization_id",
        },
      ]);
    return found.sequence;
  }
}
