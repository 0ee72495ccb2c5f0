import { connect, headers, nanos, RetentionPolicy, StorageType, type NatsConnection } from "nats";
import type { Logger } from "pino";
import type { RecordedEvent } from "../domain/events.js";
import { CONTENT_TYPE, encodeEvent, toEventMessage, type PayloadFormat } from "./codec.js";
import { JetStreamAcks, type StoredAck } from "./jetstream-acks.js";
import { streamSubjects, subjectOf } from "./subjects.js";

export interface StreamSettings {
  /** One server, or several comma-separated (NATS_URL). */
  url: string;
  stream: string;
  subjectPrefix: string;
  /** JetStream drops a re-publish of the same Nats-Msg-Id within this window. */
  duplicateWindowMs: number;
  /** Messages older than this leave the stream. */
  maxAgeMs: number;
  format: PayloadFormat;
}

/**
 * Publishes events to JetStream: subject per organization and type, the
 * event id as `Nats-Msg-Id` (so a re-publish after a crash is dropped by the
 * stream), CloudEvents binary-mode headers, and the `groups.v1.Event` body.
 * Connects at start (or, if NATS is not there yet, at the first publish) and
 * lets nats.js reconnect for ever; the stream is created (or its settings
 * updated) after every (re)connect, since a NATS that lost its store comes
 * back without it, and after a publish finds no stream.
 */
export class NatsPublisher {
  private connection: NatsConnection | undefined;
  private connecting: Promise<JetStreamAcks> | undefined;
  private acks: JetStreamAcks | undefined;
  private streamReady = false;

  constructor(
    private readonly settings: StreamSettings,
    private readonly log: Logger,
  ) {}

  /**
   * Connects and creates the stream now, in the background, rather than at
   * the first event: consumers can subscribe to a fresh deployment (a
   * consumer needs its stream) and health reports NATS as it is. An
   * unreachable NATS is only logged; the first publish tries again.
   */
  start(): void {
    this.ready().catch((err: unknown) =>
      this.log.warn({ err }, "NATS not reachable at start; the relay retries when it publishes"),
    );
  }

  get connected(): boolean {
    return this.connection !== undefined && !this.connection.isClosed() && this.streamReady;
  }

  /**
   * Publishes one event. With `expectLastId`, the stream stores it only if its
   * last stored message is that event (a re-publish of a stored event is
   * dropped as a duplicate before this check).
   */
  async publish(event: RecordedEvent, expectLastId?: string): Promise<StoredAck> {
    const acks = await this.ready();
    // append, not set: the headers are new, and set first searches them for the key to
    // replace (~1 µs of the relay's ~45 µs per event, measured on these headers).
    const h = headers();
    h.append("Content-Type", CONTENT_TYPE[this.settings.format]);
    h.append("ce-specversion", "1.0");
    h.append("ce-id", event.id);
    h.append("ce-type", event.type);
    h.append("ce-source", `/groups.v1/organizations/${event.organizationId}`);
    h.append("ce-subject", event.groupId);
    h.append("ce-time", event.createdAt.toISOString());
    h.append("Nats-Msg-Id", event.id);
    if (expectLastId !== undefined) h.append("Nats-Expected-Last-Msg-Id", expectLastId);
    const subject = subjectOf(this.settings.subjectPrefix, event.organizationId, event.type);
    return acks.publish(subject, encodeEvent(toEventMessage(event), this.settings.format), h);
  }

  async close(): Promise<void> {
    // A connect still under way (start's) would otherwise leave its connection open.
    await this.connecting?.catch(() => undefined);
    const nc = this.connection;
    this.connection = undefined;
    // Drain first, so acks already on their way still arrive; then fail whatever is left.
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    this.acks?.close();
    this.acks = undefined;
  }

  private async ready(): Promise<JetStreamAcks> {
    if (this.acks && this.streamReady && this.connection && !this.connection.isClosed())
      return this.acks;
    this.connecting ??= this.connectAndEnsureStream().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectAndEnsureStream(): Promise<JetStreamAcks> {
    if (!this.connection || this.connection.isClosed()) {
      const nc = await connect({
        servers: this.settings.url.split(",").map((s) => s.trim()),
        name: "groups-relay",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 2_000,
        // Otherwise nats.js captures a stack trace for every request (the
        // stream checks below) in case it fails.
        noAsyncTraces: true,
      });
      this.connection = nc;
      // Short, so a publish stuck in a dead (or closed) connection fails soon and is retried.
      this.acks = new JetStreamAcks(nc, 2_000, () => {
        // The stream was deleted while NATS stayed up: create it again before the retry.
        this.streamReady = false;
      });
      void this.watch(nc);
    }
    if (!this.streamReady) {
      await this.ensureStream(this.connection);
      this.streamReady = true;
    }
    return this.acks!;
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") this.log.warn({ server: status.data }, "NATS disconnected");
      if (status.type === "reconnect") {
        this.log.info({ server: status.data }, "NATS reconnected");
        this.streamReady = false;
      }
    }
  }

  private async ensureStream(nc: NatsConnection): Promise<void> {
    const jsm = await nc.jetstreamManager({ timeout: 5_000 });
    const { stream, subjectPrefix, duplicateWindowMs, maxAgeMs } = this.settings;
    const wanted = {
      subjects: [streamSubjects(subjectPrefix)],
      duplicate_window: nanos(duplicateWindowMs),
      max_age: nanos(maxAgeMs),
    };
    try {
      const info = await jsm.streams.info(stream);
      const c = info.config;
      if (
        c.subjects?.join() !== wanted.subjects.join() ||
        c.duplicate_window !== wanted.duplicate_window ||
        c.max_age !== wanted.max_age
      ) {
        await jsm.streams.update(stream, { ...c, ...wanted });
        this.log.info({ stream }, "updated the JetStream stream's settings");
      }
    } catch (err) {
      if (!/stream not found/i.test(String((err as Error).message))) throw err;
      await jsm.streams.add({
        name: stream,
        ...wanted,
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
      });
      this.log.info({ stream, subjects: wanted.subjects }, "created the JetStream stream");
    }
  }
}
