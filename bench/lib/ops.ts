import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";
import { connect, headers, nanos, StorageType, type NatsConnection } from "nats";
import { monotonicFactory } from "ulid";
import {
  groupMembersPageStatement,
  firstPagesStatement,
  membershipsInGroupsStatement,
  memberChangeReads,
  memberChangeWrites,
} from "../../server/src/store/group-members.js";
import { PREPARED_STATEMENTS_PER_CONNECTION } from "../../server/src/store/dialect.js";
import { groupStatement, insertGroupStatement } from "../../server/src/store/groups.js";
import { setUpSessions } from "../../server/src/store/mysql-session.js";
import { rng } from "../../test/support/rng.js";
import { connectClients, grpcClients, type DoorClients } from "./clients.js";
import { ids, PairAllocator, seededGroupsOf, type Dataset } from "./dataset.js";
import type { Op } from "./measure.js";

/**
 * The operations the load generator can drive: the service's hot paths (over
 * the gRPC or Connect front door) and their raw baselines (the same SQL
 * through plain mysql2, a JetStream publish with ack).
 */
export const SERVICE_OPS = [
  "Health.Check",
  "AddGroupMember.spread",
  "AddGroupMember.hot",
  "RemoveGroupMember",
  "CheckGroupMembership",
  "ListGroupsForOrganizationMembership",
  "ListGroupMembers.first",
  "ListGroupMembers.deep",
  "GetGroup",
  "CreateGroup",
  "BatchAddGroupMembers",
  "Mixed",
] as const;
export const RAW_OPS = [
  "raw.twoInsertTx",
  "raw.addGroupMemberTx.spread",
  "raw.addGroupMemberTx.hot",
  "raw.removeGroupMemberTx",
  "raw.checkGroupMembership",
  "raw.listGroupsForMembership",
  "raw.listGroupMembers.first",
  "raw.listGroupMembers.deep",
  "raw.getGroup",
  "raw.createGroupTx",
  "raw.batchAddTx",
] as const;
export type ServiceOp = (typeof SERVICE_OPS)[number];
export type RawOp = (typeof RAW_OPS)[number];
export type OpName = ServiceOp | RawOp | "jetstream.publish";
export type Door = "grpc" | "connect" | "mysql2" | "nats";

export interface WorkerInit {
  dataset: Dataset;
  grpcUrl: string;
  httpUrl: string;
  databaseUrl: string;
  /** Connect the raw baselines over this Unix socket, as the service does (BENCH_DATABASE_SOCKET). */
  databaseSocket?: string;
  natsUrl: string;
  grpcClient: "connect" | "grpc-js";
  /** Real ids of memberships of the big group about `depth` deep in its default (newest first) order. */
  deepCursors: string[];
  batchSize: number;
}

/** mysql2's escaping, times in UTC like the pools (timezone "Z"). */
const fmt = (sql: string, values: unknown[]) => mysql.format(sql, values as never, false, "Z");

// Outbox rows of the baselines go to a copy of the events table, so the relay stays idle.
const EVENT_INSERT =
  "INSERT INTO bench_raw_events (id, type, organization_id, group_id, cause, payload, created_at) VALUES ";

/** State shared by every case the load generator runs: clients, the pair allocator, counters. */
export class OpContext {
  readonly alloc: PairAllocator;
  private readonly doors = new Map<string, DoorClients>();
  private readonly nextUlid = monotonicFactory();
  private rawGroups = 0;
  private batchCalls = 0;
  private nc: NatsConnection | undefined;
  /** Each case's random draws start from its own seed. */
  private seeds = 1;

  constructor(public init: WorkerInit) {
    this.alloc = new PairAllocator(init.dataset);
  }

  /** The server moved (restarted on new ports): drop the old connections. */
  retarget(grpcUrl: string, httpUrl: string): void {
    for (const c of this.doors.values()) c.close();
    this.doors.clear();
    this.init = { ...this.init, grpcUrl, httpUrl };
  }

  private clients(door: Door): DoorClients {
    let c = this.doors.get(door);
    if (!c) {
      c =
        door === "connect"
          ? connectClients(this.init.httpUrl)
          : grpcClients(this.init.grpcUrl, this.init.grpcClient);
      this.doors.set(door, c);
    }
    return c;
  }

  async natsVersion(): Promise<string> {
    return (await this.natsConnection()).info?.version ?? "unknown";
  }

  private async natsConnection(): Promise<NatsConnection> {
    this.nc ??= await connect({ servers: this.init.natsUrl, name: "bench-loadgen" });
    return this.nc;
  }

  async close(): Promise<void> {
    for (const c of this.doors.values()) c.close();
    await this.nc?.drain().catch(() => undefined);
  }

  /** Builds the op for one case; `close` releases what it opened. */
  async prepare(
    name: OpName,
    door: Door,
    concurrency: number,
    opts: { batchSize?: number } = {},
  ): Promise<{ op: Op; close(): Promise<void> }> {
    const d = this.init.dataset;
    const random = rng(this.seeds++ * 7919);
    const pick = (n: number) => Math.floor(random() * n);
    const batchSize = opts.batchSize ?? this.init.batchSize;
    const noClose = async () => undefined;

    if (name === "jetstream.publish") return this.jetStreamPublish();
    if (name.startsWith("raw.")) return this.raw(name as RawOp, concurrency, pick, batchSize);

    const { groups, health } = this.clients(door);
    const orgA = ids.orgA;
    const add = (g: number) =>
      groups
        .addGroupMember({
          organizationId: orgA,
          groupId: ids.group(g),
          organizationMembershipId: ids.memberA(this.alloc.nonMember(g)),
        })
        .then(() => 1);
    const remove = (g: number) =>
      groups
        .removeGroupMember({
          organizationId: orgA,
          groupId: ids.group(g),
          organizationMembershipId: ids.memberA(this.alloc.member(g)),
          allowMissing: true,
        })
        .then(() => 1);
    const check = () => {
      const i = pick(d.memberships);
      const mine = seededGroupsOf(d, i);
      const groupIds = new Set<string>();
      for (let j = 0; j < 5; j++) groupIds.add(ids.group(mine[pick(mine.length)]));
      while (groupIds.size < 10) groupIds.add(ids.group(pick(d.groups)));
      return groups
        .checkGroupMembership({ organizationMembershipId: ids.memberA(i), groupIds: [...groupIds] })
        .then(() => 1);
    };
    const listFor = () =>
      groups
        .listGroupsForOrganizationMembership({
          organizationMembershipId: ids.memberA(pick(d.memberships)),
          limit: 100,
        })
        .then(() => 1);
    const listFirst = () =>
      groups
        .listGroupMembers({ organizationId: ids.orgB, groupId: ids.bigGroup, limit: 100 })
        .then(() => 1);
    const getGroup = () =>
      groups.getGroup({ organizationId: orgA, groupId: ids.group(pick(d.groups)) }).then(() => 1);

    switch (name as ServiceOp) {
      case "Health.Check":
        return { op: () => health.check({}).then(() => 1), close: noClose };
      case "AddGroupMember.spread":
        return { op: (k) => add(k % d.groups), close: noClose };
      case "AddGroupMember.hot":
        return { op: () => add(d.hotGroup), close: noClose };
      case "RemoveGroupMember":
        return { op: (k) => remove(k % d.groups), close: noClose };
      case "CheckGroupMembership":
        return { op: check, close: noClose };
      case "ListGroupsForOrganizationMembership":
        return { op: listFor, close: noClose };
      case "ListGroupMembers.first":
        return { op: listFirst, close: noClose };
      case "ListGroupMembers.deep": {
        const cursors = this.init.deepCursors;
        return {
          op: (k) =>
            groups
              .listGroupMembers({
                organizationId: ids.orgB,
                groupId: ids.bigGroup,
                limit: 100,
                after: cursors[k % cursors.length],
              })
              .then(() => 1),
          close: noClose,
        };
      }
      case "GetGroup":
        return { op: getGroup, close: noClose };
      case "CreateGroup": {
        const tag = randomBytes(3).toString("hex");
        return {
          op: (k) =>
            groups
              .createGroup({ organizationId: orgA, name: `Bench ${tag} ${k}`, description: "" })
              .then(() => 1),
          close: noClose,
        };
      }
      case "BatchAddGroupMembers":
        return {
          op: async () => {
            const g = this.batchCalls++ % d.groups;
            const membershipIds = Array.from({ length: batchSize }, () =>
              ids.memberA(this.alloc.nonMember(g)),
            );
            const res = await groups.batchAddGroupMembers({
              organizationId: orgA,
              groupId: ids.group(g),
              organizationMembershipIds: membershipIds,
            });
            return res.results.filter((r) => r.added).length;
          },
          close: noClose,
        };
      case "Mixed": {
        // The soak's traffic: writes and reads, in rotation.
        const ops = [
          (k: number) => add(k % d.groups),
          (k: number) => remove(k % d.groups),
          check,
          listFor,
          getGroup,
          listFirst,
        ];
        return { op: (k) => ops[k % ops.length](Math.floor(k / ops.length)), close: noClose };
      }
    }
    throw new Error(`unknown op ${name}`);
  }

  /** JetStream publish with ack and Nats-Msg-Id, headers and a body the size of an event, into a scratch stream. */
  private async jetStreamPublish(): Promise<{ op: Op; close(): Promise<void> }> {
    const nc = await this.natsConnection();
    const jsm = await nc.jetstreamManager();
    const id = randomBytes(4).toString("hex");
    const stream = `BENCH_JS_${id.toUpperCase()}`;
    const subject = `benchjs${id}.org_x.group.member_added`;
    await jsm.streams.add({
      name: stream,
      subjects: [`benchjs${id}.>`],
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    });
    const js = nc.jetstream();
    const body = randomBytes(220);
    return {
      op: async () => {
        const msgId = `event_${this.nextUlid()}`;
        const h = headers();
        h.set("Content-Type", "application/protobuf");
        h.set("ce-specversion", "1.0");
        h.set("ce-id", msgId);
        h.set("ce-type", "group.member_added");
        h.set("ce-source", "/groups.v1/organizations/org_x");
        h.set("ce-time", new Date().toISOString());
        await js.publish(subject, body, { msgID: msgId, headers: h, timeout: 5_000 });
        return 1;
      },
      close: async () => {
        await jsm.streams.delete(stream).catch(() => undefined);
      },
    };
  }

  /**
   * The statements the service runs for each call (as TypeORM issues them:
   * text protocol, with the session settings of store/mysql-session.ts), through a plain
   * mysql2 pool of `concurrency` connections. Outbox rows go to
   * bench_raw_events (a copy of `events`), so the relay has nothing to do.
   */
  private async raw(
    name: RawOp,
    concurrency: number,
    pick: (n: number) => number,
    batchSize: number,
  ): Promise<{ op: Op; close(): Promise<void> }> {
    const d = this.init.dataset;
    const pool = mysql.createPool({
      uri: this.init.databaseUrl,
      ...(this.init.databaseSocket ? { socketPath: this.init.databaseSocket } : {}),
      connectionLimit: concurrency,
      // Single-statement reads go as prepared statements, as the store sends them (dialect.ts).
      maxPreparedStatements: PREPARED_STATEMENTS_PER_CONNECTION,
      timezone: "Z",
      multipleStatements: true,
    });
    // The session settings the service's connections have (READ COMMITTED, the index-dive limit).
    setUpSessions(pool.pool);
    const close = () => pool.end();
    const eventRow = (type: string, g: string, org: string, m: string, user: string) => {
      const payload = JSON.stringify({
        kind: "member",
        groupId: g,
        organizationMembershipId: m,
        organizationId: org,
        userId: user,
      });
      return fmt("(?, ?, ?, ?, 'api', ?, ?)", [
        `event_${this.nextUlid()}`,
        type,
        org,
        g,
        payload,
        new Date(),
      ]);
    };
    /**
     * A member change as the store sends it (memberChangeReads, memberChangeWrites,
     * round-trips.ts): START TRANSACTION with the group under a share lock, the
     * memberships, their links with the count, then the writes — the links, one
     * delta row of the count (upsert), the outbox rows — in one round trip, then COMMIT.
     */
    const changeTx = async (g: number, members: number[], op: "add" | "remove") => {
      const c = await pool.getConnection();
      try {
        const group = ids.group(g);
        const target = {
          organizationId: ids.orgA,
          groupId: group,
          membershipIds: members.map(ids.memberA),
        };
        const reads = memberChangeReads("mysql", [target], "share");
        const [[, , , links]] = await c.query<mysql.RowDataPacket[][]>(
          ["START TRANSACTION", ...reads.map((st) => st.sql)].join(";\n"),
          reads.flatMap((st) => st.params),
        );
        const linked = new Set(links.map((r) => r.membershipId as string | null));
        const changed = members.filter((i) => linked.has(ids.memberA(i)) === (op === "remove"));
        if (changed.length === 0) {
          await c.query("COMMIT");
          return 0;
        }
        const at = new Date();
        const { statements } = memberChangeWrites("mysql", [
          {
            group: { id: group, organizationId: ids.orgA },
            op,
            membershipIds: changed.map(ids.memberA),
            events: [],
            at,
          },
        ]);
        const type = op === "add" ? "group.member_added" : "group.member_removed";
        const events: string[] = [];
        for (let s = 0; s < changed.length; s += 500) {
          events.push(
            EVENT_INSERT +
              changed
                .slice(s, s + 500)
                .map((i) => eventRow(type, group, ids.orgA, ids.memberA(i), ids.userA(i)))
                .join(", "),
          );
        }
        // The writes (links, one count-delta row, the outbox rows) in one multi-statement round trip.
        await c.query(
          [...statements.map((st) => st.sql), ...events].join(";\n"),
          statements.flatMap((st) => st.params),
        );
        await c.query("COMMIT");
        return changed.length;
      } catch (err) {
        await c.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
    };
    const addTx = (g: number, members: number[]) => changeTx(g, members, "add");
    const findGroup = (org: string, group: string) => {
      const { sql, params } = groupStatement("mysql", org, group);
      return pool.execute(sql, params as string[]);
    };
    /** ListGroupMembers: the live group, the cursor's check and the page's memberships, one statement. */
    const membersPage = async (after?: string) => {
      const { sql, params } = groupMembersPageStatement(ids.orgB, ids.bigGroup, {
        limit: 100,
        order: "desc",
        after,
      });
      await pool.execute(sql, params as string[]);
      return 1;
    };

    switch (name) {
      case "raw.twoInsertTx": {
        await pool.query(
          "CREATE TABLE IF NOT EXISTS bench_raw_a (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
        );
        await pool.query(
          "CREATE TABLE IF NOT EXISTS bench_raw_b (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
        );
        const op = async () => {
          const c = await pool.getConnection();
          try {
            await c.query("BEGIN");
            await c.query("INSERT INTO bench_raw_a (v) VALUES ('x')");
            await c.query("INSERT INTO bench_raw_b (v) VALUES ('y')");
            await c.query("COMMIT");
            return 1;
          } finally {
            c.release();
          }
        };
        return { op, close };
      }
      case "raw.addGroupMemberTx.spread":
        return {
          op: (k) => addTx(k % d.groups, [this.alloc.nonMember(k % d.groups)]).then(() => 1),
          close,
        };
      case "raw.addGroupMemberTx.hot":
        return {
          op: () => addTx(d.hotGroup, [this.alloc.nonMember(d.hotGroup)]).then(() => 1),
          close,
        };
      case "raw.batchAddTx":
        return {
          op: () => {
            const g = this.batchCalls++ % d.groups;
            return addTx(
              g,
              Array.from({ length: batchSize }, () => this.alloc.nonMember(g)),
            );
          },
          close,
        };
      case "raw.removeGroupMemberTx":
        return {
          op: async (k) => {
            await changeTx(k % d.groups, [this.alloc.member(k % d.groups)], "remove");
            return 1;
          },
          close,
        };
      case "raw.checkGroupMembership":
        return {
          op: async () => {
            const i = pick(d.memberships);
            const mine = seededGroupsOf(d, i);
            const groupIds = new Set<string>();
            for (let j = 0; j < 5; j++) groupIds.add(ids.group(mine[pick(mine.length)]));
            while (groupIds.size < 10) groupIds.add(ids.group(pick(d.groups)));
            const { sql, params } = membershipsInGroupsStatement([
              { membershipId: ids.memberA(i), groupIds: [...groupIds] },
            ]);
            await pool.execute(sql, params as string[]);
            return 1;
          },
          close,
        };
      case "raw.listGroupsForMembership":
        return {
          op: async () => {
            // The statement the service sends for a batch of first pages, with one membership.
            const m = ids.memberA(pick(d.memberships));
            const { sql, params } = firstPagesStatement("mysql", [m], "desc", 101);
            await pool.execute(sql, params as string[]);
            return 1;
          },
          close,
        };
      case "raw.listGroupMembers.first":
        return { op: () => membersPage(), close };
      case "raw.listGroupMembers.deep": {
        const cursors = this.init.deepCursors;
        return { op: (k) => membersPage(cursors[k % cursors.length]), close };
      }
      case "raw.getGroup":
        return {
          op: async () => {
            await findGroup(ids.orgA, ids.group(pick(d.groups)));
            return 1;
          },
          close,
        };
      case "raw.createGroupTx":
        /**
         * CreateGroup as the store sends it: START TRANSACTION with the
         * organization check, the group row and its outbox row in one round
         * trip (insertGroup), then COMMIT.
         */
        return {
          op: async () => {
            const c = await pool.getConnection();
            try {
              const at = new Date();
              const id = ids.rawGroup(this.rawGroups++);
              await c.query(
                "START TRANSACTION;\nSELECT 1 FROM organizations WHERE id = ? AND deleted_at IS NULL",
                [ids.orgA],
              );
              const insert = insertGroupStatement({
                id,
                organizationId: ids.orgA,
                name: `Raw ${id}`,
                description: null,
                memberCount: 0,
                version: 1,
                createdAt: at,
                updatedAt: at,
              });
              const payload = JSON.stringify({
                kind: "group",
                group: { id, organizationId: ids.orgA, name: `Raw ${id}` },
              });
              const event =
                EVENT_INSERT +
                fmt("(?, 'group.created', ?, ?, 'api', ?, ?)", [
                  `event_${this.nextUlid()}`,
                  ids.orgA,
                  id,
                  payload,
                  at,
                ]);
              await c.query(`${insert.sql};\n${event}`, insert.params);
              await c.query("COMMIT");
              return 1;
            } catch (err) {
              await c.query("ROLLBACK").catch(() => undefined);
              throw err;
            } finally {
              c.release();
            }
          },
          close,
        };
    }
    throw new Error(`unknown raw op ${name}`);
  }
}
