/**
 * `npm run bench:ab -- [A] [B]`: is build B cheaper per call than build A?
 *
 * Starts the service twice side by side — A and B are git refs, each run
 * from a worktree of its own; "." is the working tree as it is, changes and
 * all — and drives one at a time from this process with the same calls, in
 * alternating rounds (A B B A …). It reports each build's server CPU per call
 * (with --store mariadb also MariaDB's) and rate, and the paired difference
 * B − A with its 95 % interval
 * (bench/lib/ab.ts says why this resolves changes the full bench cannot).
 * Defaults: A = HEAD, B = ".", so with uncommitted changes it answers "what
 * does my change cost?"; `HEAD HEAD` shows the noise floor.
 *
 * Options: --calls "grpc GetGroup,connect Health.Check" (default: all of
 * CALLS), --rounds 20, --seconds 1 (per side per round), --warmup 5 (per
 * side per call: the first seconds' calls cost up to 1.5× the later ones'),
 * --in-flight 16, --store sqlite|mariadb (default sqlite, the embedded
 * default: no MariaDB CPU on the cores the two builds share), --out FILE
 * (default bench/results/ab.tmp).
 *
 * Both servers run with AUTH_DISABLED=1 and no NATS, like `npm run bench`'s.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createNodeClients } from "../clients/src/sdk/node.js";
import { createTestDatabase, type TestDatabase } from "../test/support/database.js";
import { pool } from "../test/support/pool.js";
import {
  compare,
  renderAb,
  renderCase,
  type AbCase,
  type AbResults,
  type AbRound,
  type AbSide,
} from "./lib/ab.js";
import { connectClients, grpcClients, type DoorClients } from "./lib/clients.js";
import { closedLoop } from "./lib/measure.js";
import { findPid, threadCpuSeconds } from "./lib/proc.js";
import { startBenchServer, type BenchServer } from "./lib/server.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * What one build is driven with: both doors' clients, a group, a membership
 * per caller (the writes' own), and a membership graph for the reads.
 */
interface Target {
  grpc: DoorClients;
  connect: DoorClients;
  organizationId: string;
  groupId: string;
  membershipIds: string[];
  graph?: ReadGraph;
}

/**
 * READERS memberships in READ_GROUPS groups, each in the half of them of its
 * own parity (membership i in the groups g ≡ i mod 2): every membership in 20
 * groups, as in `npm run bench`'s data set, on enough rows that MariaDB plans
 * the reads as it would on a real table, not a handful of rows.
 */
interface ReadGraph {
  membershipIds: string[];
  groupIds: string[];
}
const READERS = 1_000;
const READ_GROUPS = 40;

/** Reader k's membership for call k, and the 10 groups CheckGroupMembership asks about: 5 in, 5 not. */
function readerAsk(g: ReadGraph, k: number): { membershipId: string; groupIds: string[] } {
  const i = k % g.membershipIds.length;
  const groupIds = Array.from({ length: 10 }, (_, j) => g.groupIds[(i + j + 2 * k) % READ_GROUPS]);
  return { membershipId: g.membershipIds[i], groupIds };
}

/** One call of a case, made by caller `caller` (0 … `--in-flight` − 1). */
type Call = (k: number, caller: number) => Promise<unknown>;

/**
 * Each caller adds its own membership to the group, then removes it, and so
 * on, so every call changes a link and writes an event (no call is a no-op,
 * none waits on another caller's link).
 */
function memberChanges(door: (t: Target) => DoorClients) {
  return (t: Target): Call => {
    const inGroup = t.membershipIds.map(() => false);
    return async (_, caller) => {
      const change = {
        organizationId: t.organizationId,
        groupId: t.groupId,
        organizationMembershipId: t.membershipIds[caller],
      };
      const groups = door(t).groups;
      await (inGroup[caller] ? groups.removeGroupMember(change) : groups.addGroupMember(change));
      inGroup[caller] = !inGroup[caller];
    };
  };
}

/** The reads of the membership graph (seeded only when one of them is asked for). */
const GRAPH_CALLS: Record<string, (t: Target) => Call> = {
  "grpc CheckGroupMembership": (t) => (k) => {
    const ask = readerAsk(t.graph!, k);
    return t.grpc.groups.checkGroupMembership({
      organizationMembershipId: ask.membershipId,
      groupIds: ask.groupIds,
    });
  },
  // Each call another group of the graph's 40 (GetGroup above reads one group on every call).
  "grpc GetGroup of 40": (t) => (k) =>
    t.grpc.groups.getGroup({
      organizationId: t.organizationId,
      groupId: t.graph!.groupIds[k % READ_GROUPS],
    }),
  "grpc ListGroupsForOrganizationMembership": (t) => (k) =>
    t.grpc.groups.listGroupsForOrganizationMembership({
      organizationMembershipId: readerAsk(t.graph!, k).membershipId,
      limit: 100,
    }),
};

/** The calls it can compare: the trivial RPC, reads and a write on each front door. */
const CALLS: Record<string, (t: Target) => Call> = {
  "grpc Health.Check": (t) => () => t.grpc.health.check({}),
  "grpc GetGroup": (t) => () =>
    t.grpc.groups.getGroup({ organizationId: t.organizationId, groupId: t.groupId }),
  "grpc Add/RemoveGroupMember": memberChanges((t) => t.grpc),
  ...GRAPH_CALLS,
  "connect Health.Check": (t) => () => t.connect.health.check({}),
  "connect GetGroup": (t) => () =>
    t.connect.groups.getGroup({ organizationId: t.organizationId, groupId: t.groupId }),
  "connect Add/RemoveGroupMember": memberChanges((t) => t.connect),
};

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    calls: { type: "string", default: Object.keys(CALLS).join(",") },
    rounds: { type: "string", default: "20" },
    seconds: { type: "string", default: "1" },
    warmup: { type: "string", default: "5" },
    "in-flight": { type: "string", default: "16" },
    store: { type: "string", default: "sqlite" },
    out: { type: "string", default: path.join(root, "bench/results/ab.tmp") },
  },
});
const calls = opt.calls.split(",").map((c) => c.trim());
for (const c of calls)
  if (!CALLS[c]) throw new Error(`unknown call "${c}"; one of: ${Object.keys(CALLS).join(", ")}`);
const rounds = positiveNumber("rounds", opt.rounds);
const roundSeconds = positiveNumber("seconds", opt.seconds);
const warmupSeconds = Number(opt.warmup);
const inFlight = positiveNumber("in-flight", opt["in-flight"]);
if (opt.store !== "sqlite" && opt.store !== "mariadb")
  throw new Error(`--store must be sqlite or mariadb, not "${opt.store}"`);
const store: AbResults["store"] = opt.store;
/** The MariaDB both builds use, whose CPU each round also reads (none on the embedded store). */
const databasePid = store === "mariadb" ? (findPid("mariadbd") ?? findPid("mysqld")) : undefined;
const [refA = "HEAD", refB = "."] = positionals;

function positiveNumber(name: string, text: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, not "${text}"`);
  return n;
}

const git = (...args: string[]) =>
  execFileSync("git", args, {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();

const scratch = mkdtempSync(path.join(tmpdir(), "groups-ab-"));
/** Everything to undo, last first. */
const undo: (() => Promise<unknown> | unknown)[] = [];

/** A directory holding build `ref`, and the commit it is. */
function checkout(ref: string, label: string): { dir: string; commit: string } {
  if (ref === ".") {
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return { dir: root, commit: git("rev-parse", "HEAD") + (dirty ? "+dirty" : "") };
  }
  const commit = git("rev-parse", "--verify", `${ref}^{commit}`);
  const dir = path.join(scratch, label);
  git("worktree", "add", "--detach", dir, commit);
  undo.push(() => git("worktree", "remove", "--force", dir));
  // The same dependencies for both: a build is its own code, not its own install.
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir");
  return { dir, commit };
}

async function startTarget(
  dir: string,
  label: string,
): Promise<{ server: BenchServer; target: Target }> {
  let storeEnv: Record<string, string>;
  let db: TestDatabase | undefined;
  if (store === "mariadb") {
    db = await createTestDatabase();
    undo.push(() => db!.drop());
    storeEnv = { DATABASE_URL: db.url };
  } else {
    const dataDir = path.join(scratch, `${label}-data`);
    mkdirSync(dataDir);
    storeEnv = { SQLITE_PATH: path.join(dataDir, "groups.sqlite") };
  }
  const server = await startBenchServer(
    { ...storeEnv, AUTH_DISABLED: "1", RATE_LIMIT_PER_SECOND: "0" },
    "tsx",
    dir,
  );
  undo.push(() => server.kill("SIGTERM"));
  const httpUrl = `http://127.0.0.1:${server.httpPort}`;
  const grpc = grpcClients(`http://127.0.0.1:${server.grpcPort}`, "grpc-js");
  undo.push(() => grpc.close());
  const connect = connectClients(httpUrl);
  const { organizations, groups } = createNodeClients({ baseUrl: httpUrl, protocol: "connect" });
  const { organization } = await organizations.createOrganization({ name: `A/B ${label}` });
  const { group } = await groups.createGroup({
    organizationId: organization!.id,
    name: "Engineering",
    description: "read by every GetGroup call",
  });
  const newMemberships = (prefix: string, n: number) =>
    pool(
      Array.from({ length: n }, (_, k) => k),
      inFlight,
      async (k) => {
        const { organizationMembership } = await organizations.createOrganizationMembership({
          organizationId: organization!.id,
          userId: `${prefix}-${k}`,
        });
        return organizationMembership!.id;
      },
    );
  const membershipIds = await newMemberships("writer", inFlight);
  let graph: ReadGraph | undefined;
  if (calls.some((c) => c in GRAPH_CALLS)) {
    graph = { membershipIds: await newMemberships("reader", READERS), groupIds: [] };
    for (let g = 0; g < READ_GROUPS; g++) {
      const { group } = await groups.createGroup({
        organizationId: organization!.id,
        name: `g${g}`,
      });
      graph.groupIds.push(group!.id);
      await groups.batchAddGroupMembers({
        organizationId: organization!.id,
        groupId: group!.id,
        organizationMembershipIds: graph.membershipIds.filter((_, i) => i % 2 === g % 2),
      });
    }
  }
  // Index statistics as of the seeded rows, on both sides alike: InnoDB recomputes them in
  // the background at its own moment, and the plans of IN lists follow them. Without this,
  // two copies of one build differed by a third in MariaDB CPU per check, resolved.
  await db?.sql.query(
    "ANALYZE TABLE organizations, organization_memberships, org_groups, group_memberships",
  );
  return {
    server,
    target: {
      grpc,
      connect,
      organizationId: organization!.id,
      groupId: group!.id,
      membershipIds,
      graph,
    },
  };
}

/**
 * `inFlight` callers calling back to back for `seconds`, and what it cost the
 * server. The CPU also covers the few calls still in flight when the window
 * closes, which the count leaves out: at most `inFlight` of thousands, alike
 * on both sides.
 */
async function drive(call: Call, pid: number, seconds: number): Promise<AbRound> {
  const cpu0 = threadCpuSeconds(pid);
  const database0 = threadCpuSeconds(databasePid);
  const m = await closedLoop(
    async (k, caller) => void (await call(k, caller)), // one call is one item, whatever it returns
    { concurrency: inFlight, seconds, warmupSeconds: 0 },
  );
  const cpuSeconds = threadCpuSeconds(pid) - cpu0;
  const databaseCpuSeconds = threadCpuSeconds(databasePid) - database0;
  // A comparison of calls that failed would measure the failure path.
  if (m.errors > 0) throw new Error(`${m.errors} calls failed: ${JSON.stringify(m.errorSamples)}`);
  return {
    calls: m.ok,
    seconds: m.seconds,
    cpuSeconds,
    ...(Number.isFinite(databaseCpuSeconds) && { databaseCpuSeconds }),
  };
}

async function main(): Promise<void> {
  const a = checkout(refA, "a");
  const b = checkout(refB, "b");
  const sides = [
    { ref: refA, ...a, ...(await startTarget(a.dir, "a")) },
    { ref: refB, ...b, ...(await startTarget(b.dir, "b")) },
  ];
  const cases: AbCase[] = [];
  console.log(renderAb({ ...header, cases: [] }, sides));
  for (const name of calls) {
    const run = sides.map((s) => ({ call: CALLS[name](s.target), pid: s.server.pid }));
    if (warmupSeconds > 0) for (const r of run) await drive(r.call, r.pid, warmupSeconds);
    const got: AbRound[][] = [[], []];
    for (let i = 0; i < rounds; i++) {
      // A B, then B A: a drift within the pair falls on each side alike. One
      // side at a time, not both at once: driven together from this one
      // process, two identical builds came out 7 % apart in rate, resolved
      // (the side whose callers go first is served first).
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) got[k].push(await drive(run[k].call, run[k].pid, roundSeconds));
    }
    const side = (k: number): AbSide => ({
      ref: sides[k].ref,
      commit: sides[k].commit,
      rounds: got[k],
    });
    const c = compare(name, side(0), side(1));
    cases.push(c);
    console.log(`\n${renderCase(c)}`);
  }
  const results: AbResults = { ...header, cases };
  mkdirSync(path.dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nwritten to ${path.relative(root, opt.out)}`);
}

// The servers inherit this environment: neither publishes events, and each has its own store.
delete process.env.NATS_URL;
delete process.env.DATABASE_URL;

const header = {
  startedAt: new Date().toISOString(),
  host: hostname(),
  inFlight,
  rounds,
  roundSeconds,
  warmupSeconds,
  store,
};

async function cleanUp(): Promise<void> {
  for (const step of undo.reverse()) await Promise.resolve(step()).catch(() => undefined);
  undo.length = 0;
  rmSync(scratch, { recursive: true, force: true });
}

process.once("SIGINT", () => void cleanUp().then(() => process.exit(130)));
try {
  await main();
} finally {
  await cleanUp();
}
