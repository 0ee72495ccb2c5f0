import type { NatsConnection } from "nats";
import { pino } from "pino";
import type { DataSource } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../server/src/config.js";
import { groupEvent } from "../../server/src/domain/event-builders.js";
import type { RecordedEvent } from "../../server/src/domain/events.js";
import { newId } from "../../server/src/domain/ids.js";
import { NatsPublisher } from "../../server/src/events/nats-publisher.js";
import { DEFAULT_RELAY_OPTIONS, Relay } from "../../server/src/events/relay.js";
import type { StoredAck } from "../../server/src/events/jetstream-acks.js";
import { createDataSource, migrate } from "../../server/src/store/data-source.js";
import { Database } from "../../server/src/store/database.js";
import { appendEvents } from "../../server/src/store/outbox.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import {
  connectNats,
  deleteStream,
  SHARED_NATS_URL,
  storedEvents,
  uniqueStream,
} from "../support/nats.js";
import { until } from "../support/wait.js";

/**
 * The relay publishes a local commit at once (README, RELAY_POLL_INTERVAL_MS)
 * even when the commit lands while a round is under way, past the point
 * where that round picked its events: the next round follows the current one
 * instead of waiting for another commit or the poll. A client's second write
 * right after its first is such a commit.
 *
 * Real MariaDB and NATS; the only thing held is the round's first publish,
 * so the second commit is known to land during the round.
 */
let db: TestDatabase;
let ds: DataSource;
let nc: NatsConnection;
const { stream, subjectPrefix } = uniqueStream();

/** A real publisher whose first publish waits until the test lets it go. */
class HeldPublisher extends NatsPublisher {
  private release!: () => void;
  private readonly held = new Promise<void>((resolve) => (this.release = resolve));
  private noteStarted!: () => void;
  /** Resolves when the first publish has been asked for. */
  readonly started = new Promise<void>((resolve) => (this.noteStarted = resolve));

  override async publish(event: RecordedEvent, expectLastId?: string): Promise<StoredAck> {
    this.noteStarted();
    await this.held;
    return super.publish(event, expectLastId);
  }

  letGo(): void {
    this.release();
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource(loadConfig({ DATABASE_URL: db.url }).database);
  await ds.initialize();
  await migrate(ds);
  nc = await connectNats();
});

afterAll(async () => {
  await ds?.destroy();
  await db?.drop();
  if (nc) {
    await deleteStream(nc, stream);
    await nc.close();
  }
});

describe("the relay, woken by a commit during its round", () => {
  it("publishes that commit's event without waiting for the poll", async () => {
    const log = pino({ level: "silent" });
    const database = new Database(ds);
    const publisher = new HeldPublisher(
      {
        url: SHARED_NATS_URL,
        stream,
        subjectPrefix,
        duplicateWindowMs: 120_000,
        maxAgeMs: 3_600_000,
        format: "binary",
      },
      log,
    );
    // A poll far beyond the wait below: only a wake-up can publish the second event in time.
    const relay = new Relay(database, publisher, log, {
      ...DEFAULT_RELAY_OPTIONS,
      pollIntervalMs: 600_000,
    });
    const write = (name: string) => {
      const now = new Date();
      const group = {
        id: newId("group"),
        organizationId: newId("organization"),
        name,
        description: null,
        memberCount: 0,
        version: 1,
        createdAt: now,
        updatedAt: now,
      };
      const event = groupEvent("group.created", group, "api");
      return database.transaction((tx) => appendEvents(tx, [event])).then(() => event.id);
    };
    relay.start();
    try {
      const first = await write("first");
      // The round that picked the first event is publishing it: the second commits meanwhile.
      await publisher.started;
      const second = await write("second");
      publisher.letGo();
      await until("both events in the stream", async () => {
        const ids = (await storedEvents(nc, stream).catch(() => [])).map((m) => m.event.id);
        return ids.includes(first) && ids.includes(second);
      });
      const ids = (await storedEvents(nc, stream)).map((m) => m.event.id);
      expect(ids).toEqual([first, second]);
    } finally {
      await relay.stop();
      await publisher.close();
    }
  });
});
