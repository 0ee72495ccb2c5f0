import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import {
  AckPolicy,
  DeliverPolicy,
  nanos,
  type ConsumerMessages,
  type JsMsg,
  type NatsConnection,
} from "nats";
import { EventSchema, type Event } from "../gen/groups/v1/events_pb.js";

export interface SubscribeOptions {
  /** Durable consumer name: the stream remembers what this consumer has acknowledged. */
  durable: string;
  /** Stream name (NATS_STREAM of the service). Default GROUPS_EVENTS. */
  stream?: string;
  /** Subject prefix (NATS_SUBJECT_PREFIX of the service). Default groups.v1. */
  subjectPrefix?: string;
  /**
   * Subjects to receive, relative to nothing (full subjects, wildcards allowed).
   * Default: every event, `<prefix>.>`. One organization: `<prefix>.<org_id>.>`;
   * one type everywhere: `<prefix>.*.group.member_added`.
   */
  filterSubjects?: string[];
  /** Where a new consumer starts: "all" (default) or "new" (only events published from now). */
  startAt?: "all" | "new";
  /** Redelivery after this long without an ack. Default 30 s. */
  ackWaitMs?: number;
}

export interface ReceivedEvent {
  /** The decoded `groups.v1.Event`. */
  event: Event;
  subject: string;
  /** True when JetStream delivers it again (an earlier delivery was not acked in time). */
  redelivered: boolean;
  /** Acknowledge after processing; unacknowledged events are redelivered. */
  ack(): void;
  /** Ask for redelivery, optionally after a delay. */
  nak(delayMs?: number): void;
}

export interface GroupEventSubscription extends AsyncIterable<ReceivedEvent> {
  /** Stops receiving (unacked events are redelivered to the next subscriber of the same durable). */
  stop(): Promise<void>;
}

/** Decodes a message body by its Content-Type (binary protobuf by default, or JSON). */
export function decodeEvent(data: Uint8Array, contentType?: string): Event {
  return contentType?.includes("json")
    ? fromJsonString(EventSchema, new TextDecoder().decode(data))
    : fromBinary(EventSchema, data);
}

/**
 * Subscribes to `group.*` events through a durable JetStream pull consumer
 * with explicit acks. Delivery is at least once: an event whose ack was lost
 * comes again (`redelivered`), so consumers that must not act twice keep the
 * ids (`event.id`) they processed, or compare `event.sequence` with the last
 * one they handled.
 */
export async function subscribeGroupEvents(
  nc: NatsConnection,
  opts: SubscribeOptions,
): Promise<GroupEventSubscription> {
  const stream = opts.stream ?? "GROUPS_EVENTS";
  const prefix = opts.subjectPrefix ?? "groups.v1";
  const filters = opts.filterSubjects ?? [`${prefix}.>`];
  const jsm = await nc.jetstreamManager();
  const existing = await jsm.consumers.info(stream, opts.durable).catch(() => undefined);
  if (!existing) {
    await jsm.consumers.add(stream, {
      durable_name: opts.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: opts.startAt === "new" ? DeliverPolicy.New : DeliverPolicy.All,
      ack_wait: nanos(opts.ackWaitMs ?? 30_000),
      ...(filters.length === 1 ? { filter_subject: filters[0] } : { filter_subjects: filters }),
    });
  }
  const consumer = await nc.jetstream().consumers.get(stream, opts.durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
  const toReceived = (m: JsMsg): ReceivedEvent => ({
    event: decodeEvent(m.data, m.headers?.get("Content-Type")),
    subject: m.subject,
    redelivered: m.redelivered,
    ack: () => m.ack(),
    nak: (delayMs) => m.nak(delayMs),
  });
  return {
    async *[Symbol.asyncIterator]() {
      for await (const m of messages) yield toReceived(m);
    },
    async stop() {
      // stop() ends the iteration at once; awaiting close() would wait for a
      // reader that may never come (e.g. after `break` out of a for-await).
      messages.stop();
    },
  };
}
