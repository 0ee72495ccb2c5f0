import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { QueryRunner } from "typeorm";
import type { RecordedEvent } from "../domain/events.js";
import type { Database } from "../store/database.js";
import * as events from "../store/events.js";
import type { NatsPublisher } from "./nats-publisher.js";

export interface RelayOptions {
  /** Events sequenced and published per round: the publishes of a round are in flight together. */
  batchSize: number;
  /** How often a leader looks for events committed by other replicas. */
  pollIntervalMs: number;
  /** Shortest time between the starts of two rounds woken by local commits. */
  minRoundGapMs: number;
  /** How often a follower tries to take the lease. */
  leaseRetryMs: number;
  /** How often a leader confirms it still holds the lease. */
  leaseCheckMs: number;
  /** Longest wait between retries; keep it well below the stream's duplicate window. */
  maxBackoffMs: number;
  /** Events are kept at least this long. */
  retentionMs: number;
  pruneIntervalMs: number;
  /** Called per acknowledged event (metrics). */
  onPublished?: (event: RecordedEvent) => void;
  /** Test-only crash points (GROUPS_FAULT_INJECTION). */
  fault?: "crash-before-publish" | "crash-after-ack";
}

const PRUNE_BATCH = 5_000;
const PRUNE_BATCHES_PER_ROUND = 20;

export const DEFAULT_RELAY_OPTIONS: RelayOptions = {
  batchSize: 2000,
  pollIntervalMs: 250,
  minRoundGapMs: 10,
  leaseRetryMs: 1_000,
  leaseCheckMs: 1_000,
  maxBackoffMs: 5_000,
  retentionMs: 30 * 24 * 3600 * 1000,
  pruneIntervalMs: 60_000,
};

/**
 * Moves events from the outbox to NATS JetStream. Exactly one replica relays
 * at a time: the holder of a MySQL named lock (GET_LOCK) on a dedicated
 * connection; when the holder dies its connection closes, the lock frees, and
 * another replica takes it within `leaseRetryMs`.
 *
 * Each round the leader (1) gives newly committed events consecutive
 * `sequence` numbers, in one statement on the lease connection, and (2)
 * publishes sequenced events in sequence order with `Nats-Msg-Id` = event id,
 * awaits the acks, then moves the published-through watermark (one row) past
 * them. The publishes of a round are pipelined, each naming the one before it
 * as the stream's expected last message, so a failed publish can never let a
 * later event overtake it (see publishRound). A crash between ack and mark
 * makes the next leader publish again, and JetStream drops the duplicate.
 *
 * Emits "sequenced" after each batch of new sequence numbers (StreamEvents
 * waits on it).
 */
export class Relay extends EventEmitter {
  private runner: QueryRunner | undefined;
  private leader = false;
  private leaseCheckedAt = 0;
  private lockName = "";
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  /** A wake() came while no wait was under way: the round running then may have missed a commit. */
  private wokenDuringRound = false;
  private prunedAt = 0;
  /** The last event this leader saw stored, while nothing failed since (see publishRound). */
  private lastPublishedId: string | undefined;
  private roundStartedAt = 0;
  private readonly onCommit = () => this.wake();

  constructor(
    private readonly db: Database,
    private readonly publisher: NatsPublisher | undefined,
    private readonly log: Logger,
    private readonly opts: RelayOptions = DEFAULT_RELAY_OPTIONS,
  ) {
    super();
    this.setMaxListeners(0);
  }

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    this.stopped = false;
    this.db.on("events-committed", this.onCommit);
    this.loop = this.run();
  }

  /** Starts a round now instead of at the next poll (or right after the round under way). */
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.wokenDuringRound = true;
  }

  /** Finishes the current round, gives up the lease and closes its connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.db.off("events-committed", this.onCommit);
    this.wake();
    await this.loop;
    await this.releaseLease();
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      try {
        if (!(await this.holdLease())) {
          await this.sleep(this.opts.leaseRetryMs);
          continue;
        }
        this.roundStartedAt = Date.now();
        this.wokenDuringRound = false;
        const { sequenced, unpublished } = await this.sequenceRound();
        const published = this.publisher ? await this.publishRound(unpublished) : 0;
        await this.pruneIfDue();
        backoff = 0;
        if (sequenced < this.opts.batchSize && published < this.opts.batchSize) {
          await this.sleep(this.opts.pollIntervalMs);
        }
      } catch (err) {
        backoff = Math.min(this.opts.maxBackoffMs, Math.max(100, backoff * 2));
        this.log.warn({ err, retryInMs: backoff }, "relay round failed");
        // Confirm the lease before the next round: a broken lease connection is dropped then.
        this.leaseCheckedAt = 0;
        // Commits must not cut a backoff short, or a fast-failing error retries per commit.
        await this.sleep(backoff, { wakeable: false });
      }
    }
  }

  /**
   * Waits `ms`; a wake() (a local commit) ends a wakeable wait early, stop()
   * ends any. A commit during the round before it counts as a wake: that
   * round may have picked its events before the commit.
   */
  private sleep(ms: number, opts: { wakeable: boolean } = { wakeable: true }): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === wakeUp) this.wakeUp = undefined;
        resolve();
      };
      const wakeUp = () => {
        if (!opts.wakeable && !this.stopped) return;
        this.wakeUp = undefined;
        clearTimeout(timer);
        // Under a stream of commits, rounds start at most every minRoundGapMs:
        // each round then carries a batch instead of one event, and the relay
        // stops competing with the writes it follows.
        const wait = this.stopped
          ? 0
          : this.opts.minRoundGapMs - (Date.now() - this.roundStartedAt);
        if (wait > 0) timer = setTimeout(done, wait);
        else done();
      };
      timer = setTimeout(done, ms);
      this.wakeUp = wakeUp;
      if (opts.wakeable && this.wokenDuringRound) {
        this.wokenDuringRound = false;
        wakeUp();
      }
    });
  }

  /** True while this replica holds the relay lease; tries to take it when free. */
  private async holdLease(): Promise<boolean> {
    // The embedded SQLite file belongs to one process: it always relays.
    if (this.db.dialect === "sqlite") return (this.leader = true);
    try {
      if (!this.runner) {
        this.runner = this.db.dataSource.createQueryRunner();
        await this.runner.connect();
        const [{ db }] = (await this.runner.query("SELECT DATABASE() AS db")) as { db: string }[];
        // Named locks are server-wide: scope the name to this database.
        this.lockName = `groups_relay:${db}`.slice(0, 64);
      }
      const now = Date.now();
      if (this.leader) {
        if (now - this.leaseCheckedAt < this.opts.leaseCheckMs) return true;
        const [{ mine }] = (await this.runner.query(
          "SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS mine",
          [this.lockName],
        )) as { mine: number | null }[];
        this.leader = mine === 1;
        this.leaseCheckedAt = now;
        if (!this.leader) {
          this.lastPublishedId = undefined;
          this.log.warn("lost the relay lease");
        }
        return this.leader;
      }
      const [{ got }] = (await this.runner.query("SELECT GET_LOCK(?, 0) AS got", [
        this.lockName,
      ])) as {
        got: number | null;
      }[];
      this.leader = got === 1;
      this.leaseCheckedAt = now;
      if (this.leader) this.log.info("took the relay lease");
      return this.leader;
    } catch (err) {
      this.log.warn({ err }, "relay lease connection failed");
      await this.releaseLease();
      return false;
    }
  }

  private async releaseLease(): Promise<void> {
    const runner = this.runner;
    this.runner = undefined;
    this.leader = false;
    this.lastPublishedId = undefined;
    if (!runner) return;
    await runner.query("DO RELEASE_LOCK(?)", [this.lockName]).catch(() => undefined);
    await runner.release().catch(() => undefined);
  }

  /**
   * Sequences newly committed events on the lease connection, so a lost lease
   * aborts the batch, and (with a publisher) reads the next events to publish.
   */
  private async sequenceRound(): Promise<{ sequenced: number; unpublished: RecordedEvent[] }> {
    const max = this.opts.batchSize;
    let round: { sequenced: number; unpublished: RecordedEvent[] };
    if (this.db.dialect === "sqlite") {
      const sequenced = await this.db.transaction((tx) => events.assignSequencesSqlite(tx, max));
      const unpublished = this.publisher ? await events.unpublishedEvents(this.db.reader, max) : [];
      round = { sequenced, unpublished };
    } else {
      round = await events.sequenceAndFetch(this.runner!, max, this.publisher !== undefined);
    }
    if (round.sequenced > 0) this.emit("sequenced");
    return round;
  }

  private async publishRound(batch: RecordedEvent[]): Promise<number> {
    if (batch.length === 0) return 0;
    if (this.opts.fault === "crash-before-publish") {
      // Calls go on being answered for a moment (their events stay unpublished), then the process dies.
      setTimeout(() => crash("before publish"), 200);
      return new Promise<never>(() => undefined);
    }
    // One pipeline in sequence order, without waiting for each ack: every
    // publish names the previous event as the stream's expected last message
    // (JetStream checks it after dropping duplicates). If one is not stored,
    // every later one in flight is refused too, so nothing can overtake it —
    // one group's events stay in commit order — and the next round starts
    // again from the first event not acknowledged.
    let previous = this.lastPublishedId;
    const outcomes = await Promise.allSettled(
      batch.map((e) => {
        const expectLastId = previous;
        previous = e.id;
        return this.publisher!.publish(e, expectLastId);
      }),
    );
    // Events are in the stream through the last of the leading acknowledged
    // ones. One not acknowledged stops the watermark there even if later ones
    // were (its publish may have been stored with its ack lost): the next
    // round publishes them again and JetStream drops the duplicates.
    let publishedThrough: string | undefined;
    let acked = 0;
    let failure: unknown;
    outcomes.forEach((outcome, i) => {
      if (outcome.status === "fulfilled") {
        acked++;
        if (failure === undefined) publishedThrough = batch[i].sequence;
        this.opts.onPublished?.(batch[i]);
      } else {
        failure ??= outcome.reason;
      }
    });
    // After a failure the stream's last message is unknown: the next round's first publish names none.
    this.lastPublishedId = failure === undefined ? batch.at(-1)!.id : undefined;
    if (this.opts.fault === "crash-after-ack" && acked > 0) crash("after ack, before mark");
    if (publishedThrough !== undefined)
      await events.markPublishedThrough(this.db.reader, publishedThrough);
    if (failure) throw failure;
    return acked;
  }

  private async pruneIfDue(): Promise<void> {
    const now = Date.now();
    if (now - this.prunedAt < this.opts.pruneIntervalMs) return;
    this.prunedAt = now;
    const before = new Date(now - this.opts.retentionMs);
    // At most 100,000 rows a round, so publishing is not held up for long; a
    // prune that leaves more behind is due again next round rather than in a
    // minute, or a deployment writing over ~1,700 events/s would outgrow it.
    for (let i = 0; i < PRUNE_BATCHES_PER_ROUND; i++) {
      const n = await events.pruneEvents(
        this.db.reader,
        before,
        PRUNE_BATCH,
        this.publisher !== undefined,
      );
      if (n < PRUNE_BATCH) return;
    }
    this.prunedAt = 0;
  }
}

function crash(where: string): never {
  console.error(`GROUPS_FAULT_INJECTION: crashing the relay ${where}`);
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}
