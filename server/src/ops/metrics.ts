import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** What the metrics read from other parts when scraped. */
export interface MetricSources {
  pool(): { inUse: number; idle: number; waiting: number };
  backlog(): Promise<{ count: number; oldest: Date | null }>;
}

/** Prometheus metrics, served at /metrics on PORT. */
export class Metrics {
  readonly registry = new Registry();
  readonly rpcs: Counter<"service" | "method" | "door" | "code">;
  readonly rpcSeconds: Histogram<"service" | "method" | "door">;
  readonly eventsPublished: Counter;
  /** Commit → JetStream ack, per event. */
  readonly relayLagSeconds: Histogram;
  /** AddGroupMember/RemoveGroupMember calls served by each shared transaction. */
  readonly memberChangesPerTransaction: Histogram;
  /** How long each of those shared transactions took, start to commit. */
  readonly memberChangeTransactionSeconds: Histogram;
  readonly readsPerStatement: Histogram<"method">;
  /** How long each of those shared statements took, sent to answered. */
  readonly readStatementSeconds: Histogram<"method">;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.rpcs = new Counter({
      name: "groups_rpc_total",
      help: "RPCs handled, by front door and status code",
      labelNames: ["service", "method", "door", "code"],
      registers,
    });
    this.rpcSeconds = new Histogram({
      name: "groups_rpc_duration_seconds",
      help: "RPC latency (streams: until the stream ends)",
      labelNames: ["service", "method", "door"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.eventsPublished = new Counter({
      name: "groups_events_published_total",
      help: "Events acknowledged by JetStream",
      registers,
    });
    this.relayLagSeconds = new Histogram({
      name: "groups_relay_lag_seconds",
      help: "Time from an event's commit to its JetStream ack",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.memberChangesPerTransaction = new Histogram({
      name: "groups_member_changes_per_transaction",
      help: "AddGroupMember and RemoveGroupMember calls served together by one transaction (group commit)",
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.memberChangeTransactionSeconds = new Histogram({
      name: "groups_member_change_transaction_seconds",
      help: "Time each shared AddGroupMember/RemoveGroupMember transaction took, from its start to its commit",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.readsPerStatement = new Histogram({
      name: "groups_reads_per_statement",
      help: "GetGroup, CheckGroupMembership and ListGroupsForOrganizationMembership calls answered together by one statement",
      labelNames: ["method"],
      buckets: [1, 2, 4, 8, 16],
      registers,
    });
    this.readStatementSeconds = new Histogram({
      name: "groups_read_statement_seconds",
      help: "Time each shared GetGroup/CheckGroupMembership/ListGroupsForOrganizationMembership statement took, sent to answered",
      labelNames: ["method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    const pool = (
      name: string,
      help: string,
      pick: (p: ReturnType<MetricSources["pool"]>) => number,
    ) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(sources.pool()));
        },
      });
    pool(
      "groups_db_pool_in_use",
      "Database connections executing a query or transaction",
      (p) => p.inUse,
    );
    pool("groups_db_pool_idle", "Idle database connections", (p) => p.idle);
    pool("groups_db_pool_waiting", "Calls waiting for a database connection", (p) => p.waiting);
    // Both outbox gauges read one answer per scrape: one query, not two.
    let backlog: { at: number; answer: ReturnType<MetricSources["backlog"]> } | undefined;
    const backlogNow = () => {
      if (!backlog || Date.now() - backlog.at > 1_000)
        backlog = { at: Date.now(), answer: sources.backlog() };
      return backlog.answer;
    };
    new Gauge({
      name: "groups_outbox_backlog",
      help: "Events recorded but not yet published",
      registers,
      async collect() {
        this.set((await backlogNow()).count);
      },
    });
    new Gauge({
      name: "groups_outbox_oldest_age_seconds",
      help: "Age of the oldest unpublished event (0 when none)",
      registers,
      async collect() {
        const { oldest } = await backlogNow();
        this.set(oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0);
      },
    });
  }
}

/** Connection counts of the mysql2 pool behind a TypeORM data source (internal fields, read defensively). */
export function mysqlPoolStats(driver: unknown): { inUse: number; idle: number; waiting: number } {
  const pool = (driver as { pool?: Record<string, { length?: number; size?: number } | undefined> })
    .pool;
  const len = (x: { length?: number; size?: number } | undefined) => x?.length ?? x?.size ?? 0;
  const all = len(pool?._allConnections);
  const idle = len(pool?._freeConnections);
  return { inUse: Math.max(0, all - idle), idle, waiting: len(pool?._connectionQueue) };
}
