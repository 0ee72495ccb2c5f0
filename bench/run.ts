/**
 * `npm run bench` (and `npm run bench:smoke`): issue 7's benchmark suite.
 *
 * This process orchestrates: it creates a fresh database, starts the service
 * as its own process (AUTH_DISABLED=1, its own NATS stream and subject
 * prefix), seeds the data set straight into MariaDB, and starts the load
 * generator (bench/worker.ts) as a third process, which drives every case
 * and its raw baselines. Then the event relay (latency at a fixed rate, a
 * backlog drain across a restart) and a memory soak. Writes
 * bench/results/<name>.json and, for the full run, the results section of
 * BENCHMARKS.md (`--render <file>` rewrites that section from a results
 * file without running anything). Settings: see bench/lib/config.ts.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connect, type NatsConnection } from "nats";
import {
  createTestDatabase,
  unpublishedCount,
  type TestDatabase,
} from "../test/support/database.js";
import { SHARED_NATS_URL } from "../test/support/nats.js";
import { freePort } from "../test/support/ports.js";
import type { RunResult, RunSpec } from "./worker.js";
import { loadBenchConfig } from "./lib/config.js";
import { datasetFor, ids, strideOf } from "./lib/dataset.js";
import { LoadGenerator } from "./lib/loadgen.js";
import { loadAverage, machineInfo } from "./lib/machine.js";
import { buildPlan, caseKey, neighbourKey, type CaseDef } from "./lib/plan.js";
import { cpuSeconds, findPid, memoryMb, type Pids } from "./lib/proc.js";
import { StreamLatencyProbe, lagBetween, scrapeRelayLag } from "./lib/relay.js";
import { sleepsPerCall, writeMarkdown } from "./lib/report.js";
import { describeResumeProbe, runResumeProbe } from "./lib/resume-probe.js";
import type {
  BacklogResult,
  BenchResults,
  CaseResult,
  MemoryResult,
  RelayLatencyResult,
} from "./lib/results.js";
import { seed } from "./lib/seed.js";
import { startBenchServer, type BenchServer } from "./lib/server.js";
import { evaluateTargets } from "./lib/targets.js";

// `--render <results.json>`: only rewrite BENCHMARKS.md's results section from a results file.
const renderFrom = process.argv.indexOf("--render");
if (renderFrom >= 0) {
  const file = process.argv[renderFrom + 1] ?? "bench/results/bench.json";
  const saved = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
  writeMarkdown("BENCHMARKS.md", { ...saved, targets: evaluateTargets(saved) });
  console.log(`BENCHMARKS.md rewritten from ${file}`);
  process.exit(0);
}

const cfg = loadBenchConfig();
const dataset = datasetFor(cfg.scale);
const startedAt = new Date();
const t0 = performance.now();
const log = (s: string) =>
  console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const plan = buildPlan(cfg.concurrency, cfg.only);
const runAll = cfg.only.length === 0;
log(
  `${cfg.name}: scale ${cfg.scale} (${dataset.memberships} memberships, ${dataset.groups} groups, ` +
    `a ${dataset.bigGroupMembers}-member group), ${plan.length} cases × (${cfg.warmupSeconds} + ${cfg.seconds} s)`,
);

// One stream and subject prefix for this run only.
const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const stream = `BENCH_${runId.toUpperCase()}`;
const subjectPrefix = `bench${runId}.v1`;
const pids: Pids = {
  mariadb: findPid("mariadbd") ?? findPid("mysqld"),
  nats: findPid("nats-server", ":4222") ?? findPid("nats-server", "4222") ?? findPid("nats-server"),
};

let db: TestDatabase | undefined;
let nc: NatsConnection | undefined;
let server: BenchServer | undefined;
let loadgen: LoadGenerator | undefined;
/** The one clean-up, once begun (see cleanUp). */
let cleaning: Promise<void> | undefined;
const rssSamples: { at: number; mb: number }[] = [];
let peakRssMb = 0;
const notePeak = (pid: number | undefined) => {
  const m = pid ? memoryMb(pid) : undefined;
  if (m) peakRssMb = Math.max(peakRssMb, m.peak);
};

function serverEnv(natsUrl: string): Record<string, string> {
  return {
    DATABASE_URL: cfg.databaseSocket
      ? `${db!.url}?socket=${encodeURIComponent(cfg.databaseSocket)}`
      : db!.url,
    AUTH_DISABLED: "1",
    // The in-progress per-caller rate limit (issue 4) would throttle the load generator.
    RATE_LIMIT_PER_SECOND: "0",
    NATS_URL: natsUrl,
    NATS_STREAM: stream,
    NATS_SUBJECT_PREFIX: subjectPrefix,
    NODE_OPTIONS: [
      cfg.serverNodeOptions,
      cfg.serverCpuProfDir ? `--require ${path.resolve("bench/lib/cpu-profile.cjs")}` : "",
    ]
      .filter(Boolean)
      .join(" "),
    ...(cfg.serverCpuProfDir ? { BENCH_CPU_PROF_DIR: path.resolve(cfg.serverCpuProfDir) } : {}),
  };
}

/** Set when a server process exits on its own: the run stops there. */
let serverDied: string | undefined;
/** Marks a server's exit as asked for, by PID. */
const stoppingServers = new Map<number, () => void>();

async function startServer(natsUrl: string): Promise<BenchServer> {
  const s = await startBenchServer(serverEnv(natsUrl), cfg.server);
  pids.server = s.pid;
  let stopping = false;
  stoppingServers.set(s.pid, () => (stopping = true));
  void s.exited.then(({ code, signal }) => {
    if (stopping) return;
    serverDied = `server ${s.pid} exited on its own (${code ?? signal}):\n${s.stderr().slice(-4000)}`;
    log(serverDied);
  });
  return s;
}
async function stopServer(s: BenchServer): Promise<void> {
  notePeak(s.pid);
  stoppingServers.get(s.pid)?.();
  const { code, signal } = await s.kill("SIGTERM");
  if (code !== 0) log(`server ${s.pid} exited with ${code ?? signal}:\n${s.stderr().slice(-2000)}`);
}

/** Stops the run if the server died (every later figure would be connection errors). */
function checkServer(): void {
  if (serverDied) throw new Error(serverDied);
}

const unpublished = () => unpublishedCount(db!);

/** Waits until the relay has published every event; resolves the seconds it took. */
async function relayCatchUp(): Promise<number> {
  const started = performance.now();
  const deadline = started + cfg.drainTimeoutSeconds * 1000;
  while ((await unpublished()) > 0) {
    if (performance.now() > deadline) {
      log(`relay still behind after ${cfg.drainTimeoutSeconds} s; going on`);
      break;
    }
    await sleep(100);
  }
  return round((performance.now() - started) / 1000);
}

const spec = (c: Pick<CaseDef, "op" | "door" | "concurrency">, extra: Partial<RunSpec> = {}) =>
  ({
    op: c.op,
    door: c.door,
    concurrency: c.concurrency,
    seconds: cfg.seconds,
    warmupSeconds: cfg.warmupSeconds,
    pids: { ...pids },
    ...extra,
  }) satisfies RunSpec;

function line(label: string, r: RunResult, extra = ""): string {
  const items =
    r.itemsPerSecond !== r.perSecond ? ` (${Math.round(r.itemsPerSecond)} items/s)` : "";
  return (
    `${label.padEnd(58)} ${String(Math.round(r.perSecond)).padStart(6)}/s${items}  p50 ${r.latency.p50Ms.toFixed(2)}  p99 ${r.latency.p99Ms.toFixed(2)} ms` +
    `  cpu srv ${r.cpu.server} db ${r.cpu.mariadb} lg ${r.cpu.loadgen} other ${r.cpu.other}` +
    `  sleeps/call srv/db/nats/lg ${sleepsPerCall(r)}` +
    (r.db
      ? `  per item: ${r.db.statements} stmts, ${r.db.rowsRead} rows read, ${r.db.pageReads} pages (${r.db.diskReads} from disk), ${r.db.fsyncs} fsyncs, ${r.db.pagesFlushed} flushed`
      : "") +
    (r.shared
      ? `  shared: ${r.shared.callsPerUnit} calls per ${r.shared.unit} of ${r.shared.msPerUnit} ms`
      : "") +
    (r.errors ? `  ERRORS ${r.errors}: ${Object.keys(r.errorSamples)[0]}` : "") +
    extra
  );
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  // Every signal is handled, not only the first: Ctrl-C reaches this process
  // twice (from the terminal and relayed by tsx), and the default action of
  // the second would end the process halfway through cleaning up.
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: cleaning up`);
    // The case in flight is moot: stop its calls before the server they go to.
    void (loadgen?.kill() ?? Promise.resolve())
      .catch(() => undefined)
      .then(cleanUp)
      .finally(() => process.exit(130));
  });
}

try {
  db = await createTestDatabase();
  nc = await connect({ servers: SHARED_NATS_URL, name: "bench-orchestrator" });
  const jsm = await nc.jetstreamManager();
  const loadAverageAtStart = loadAverage();

  if (cfg.server === "dist") {
    log("compiling the server (npm run build)");
    execFileSync("npm", ["run", "-s", "build"], { stdio: "inherit" });
  }
  log(`database ${db.name}; starting the server (migrations)`);
  server = await startServer(SHARED_NATS_URL);
  const sampler = setInterval(() => {
    const m = pids.server ? memoryMb(pids.server) : undefined;
    if (m) {
      rssSamples.push({ at: performance.now(), mb: m.rss });
      peakRssMb = Math.max(peakRssMb, m.peak);
    }
  }, 500);

  log("seeding");
  const seedReport = await seed(db.url, dataset);
  log(`seeded in ${seedReport.seconds.toFixed(1)} s`);
  await db.sql.query("CREATE TABLE bench_raw_events LIKE events");

  // Real ids at ~half the big group's depth, in the default (newest first) order.
  const depth = Math.floor(dataset.bigGroupMembers / 2);
  const step = Math.max(1, Math.floor(dataset.bigGroupMembers / 10_000));
  const [cursorRows] = (await db.sql.query(
    `SELECT organization_membership_id AS id FROM group_memberships WHERE group_id = ?
     ORDER BY organization_membership_id DESC LIMIT ${16 * step} OFFSET ${depth - 1}`,
    [ids.bigGroup],
  )) as unknown as [{ id: string }[]];
  const deepCursors = cursorRows.filter((_, i) => i % step === 0).map((r) => r.id);
  const stride = strideOf(dataset);
  // 1,000 per call (issue 7); smaller only when the data set is tiny, so that batches do not use up
  // the (group, non-member) pairs every later write needs.
  const batchSize = Math.min(1000, Math.floor((dataset.memberships * (stride - 1)) / stride / 40));

  loadgen = await LoadGenerator.start({
    dataset,
    grpcUrl: `http://127.0.0.1:${server.grpcPort}`,
    httpUrl: `http://127.0.0.1:${server.httpPort}`,
    databaseUrl: db.url,
    databaseSocket: cfg.databaseSocket,
    natsUrl: SHARED_NATS_URL,
    grpcClient: cfg.grpcClient,
    deepCursors,
    batchSize,
  });
  pids.loadgen = loadgen.pid;
  const info = await loadgen.info();
  const machine = await machineInfo(db.sql, info.natsVersion);
  // Before any case, while the machine is otherwise quiet: what a sleep costs a Node.js thread here.
  const resumeProbe = await runResumeProbe(Math.min(2, cfg.seconds * 0.4));
  log(
    `resume probe, CPU per echo call of client / server main thread: ${describeResumeProbe(resumeProbe)}`,
  );
  log(
    `server pid ${server.pid}, load generator pid ${loadgen.pid}, mariadbd ${pids.mariadb}, nats-server ${pids.nats}`,
  );

  // ---- the cases ----------------------------------------------------------
  const results: CaseResult[] = [];
  const byKey = new Map<string, CaseResult>();
  for (const c of plan) {
    checkServer();
    const samplesBefore = rssSamples.length;
    const r = await loadgen.run(spec(c));
    const during = rssSamples.slice(samplesBefore).map((x) => x.mb);
    const result: CaseResult = { ...c, ...r, ratios: {} };
    if (during.length > 0) result.serverRssMb = round(Math.max(...during), 0);
    if (c.writes) result.relayCatchUpSeconds = await relayCatchUp();
    results.push(result);
    byKey.set(c.key, result);
    log(
      line(c.key, r, result.relayCatchUpSeconds ? `  relay +${result.relayCatchUpSeconds} s` : ""),
    );
  }
  for (const r of results) {
    if (r.kind !== "service") continue;
    const per = (key: string | undefined, unit: "items" | "calls" = "calls") => {
      const b = key ? byKey.get(key) : undefined;
      if (!b || b.perSecond === 0) return undefined;
      return round(
        unit === "items" ? r.itemsPerSecond / b.itemsPerSecond : r.perSecond / b.perSecond,
        3,
      );
    };
    r.ratios.sameSql = per(r.sameSql, r.unit === "memberships" ? "items" : "calls");
    // A reference run again next to this case, if any, is the one its ratio is read against.
    const against = (reference: string) => {
      const atStart = per(reference);
      const next = per(neighbourKey(reference, r.op));
      return next === undefined ? { ratio: atStart } : { ratio: next, atStart };
    };
    const trivial = against(caseKey(r.door, "Health.Check", r.concurrency));
    r.ratios.trivialRpc = trivial.ratio;
    r.ratios.trivialRpcAtStart = trivial.atStart;
    if (r.writes) {
      const twoInsert = against(caseKey("mysql2", "raw.twoInsertTx", r.concurrency));
      r.ratios.twoInsertTx = twoInsert.ratio;
      r.ratios.twoInsertTxAtStart = twoInsert.atStart;
    }
  }

  // ---- the relay at a fixed offered rate --------------------------------------
  const relayLatency: RelayLatencyResult[] = [];
  if (runAll || cfg.only.some((o) => "relay".includes(o))) {
    const httpUrl = `http://127.0.0.1:${server.httpPort}`;
    const variants = [
      {
        label: `AddGroupMember at ${cfg.relayRate}/s (one event per call)`,
        op: "AddGroupMember.spread" as const,
        rate: cfg.relayRate,
        batchSize: undefined,
        eventsPerCall: 1,
      },
      {
        label: `BatchAddGroupMembers of 10 at ${cfg.relayRate / 10}/s (${cfg.relayRate} events/s)`,
        op: "BatchAddGroupMembers" as const,
        rate: cfg.relayRate / 10,
        batchSize: 10,
        eventsPerCall: 10,
      },
    ];
    for (const v of variants) {
      checkServer();
      await relayCatchUp();
      const probe = await StreamLatencyProbe.start(nc, stream);
      const before = await scrapeRelayLag(httpUrl);
      const from = Date.now() + cfg.warmupSeconds * 1000;
      probe.measureBetween(from, from + cfg.relaySeconds * 1000);
      const calls = await loadgen.run(
        spec(
          { op: v.op, door: "grpc", concurrency: 256 },
          { seconds: cfg.relaySeconds, rate: v.rate, batchSize: v.batchSize },
        ),
      );
      await relayCatchUp();
      await sleep(300);
      const after = await scrapeRelayLag(httpUrl);
      const streamLatency = await probe.stop();
      const result: RelayLatencyResult = {
        label: v.label,
        offeredEventsPerSecond: cfg.relayRate,
        achievedEventsPerSecond: round(calls.itemsPerSecond, 1),
        calls,
        streamLatency,
        serverLag: lagBetween(before, after),
      };
      relayLatency.push(result);
      log(
        line(`relay: ${v.label}`, calls) +
          `\n        event → stream p50 ${streamLatency.p50Ms} p99 ${streamLatency.p99Ms} ms (${streamLatency.count} events); server lag ${JSON.stringify(result.serverLag)}`,
      );
    }
  }

  // ---- memory soak ----------------------------------------------------------------
  checkServer();
  log(`soak: ${cfg.soakSeconds} s of mixed calls at 16 in flight`);
  const soakStart = performance.now();
  const soakCalls = await loadgen.run(
    spec(
      { op: "Mixed", door: "grpc", concurrency: 16 },
      { seconds: cfg.soakSeconds, warmupSeconds: 0 },
    ),
  );
  const soakEnd = performance.now();
  await relayCatchUp();
  const series = rssSamples
    .filter((s) => s.at >= soakStart && s.at <= soakEnd)
    .map((s) => ({ s: round((s.at - soakStart) / 1000, 1), mb: round(s.mb, 1) }));
  // RSS of a garbage-collected process saws up and down; a leak shows as peaks that keep rising.
  const half = Math.floor(series.length / 2);
  const peak = (xs: { mb: number }[]) => Math.max(0, ...xs.map((x) => x.mb));
  const soak: MemoryResult["soak"] = {
    seconds: cfg.soakSeconds,
    calls: soakCalls,
    startMb: series[0]?.mb ?? 0,
    endMb: series.at(-1)?.mb ?? 0,
    // A soak shorter than the 500 ms sampling has no samples: zeros, as start and end.
    minMb: series.length ? Math.min(...series.map((s) => s.mb)) : 0,
    maxMb: peak(series),
    // Two halves need two samples; with fewer there is nothing to compare.
    growth:
      half > 0
        ? round(peak(series.slice(half)) / Math.max(1, peak(series.slice(0, half))) - 1, 4)
        : 0,
    series: series.filter((_, i) => i % 2 === 0),
  };
  log(line("soak: mixed", soakCalls, `  RSS ${soak.startMb} → ${soak.endMb} MB`));

  // ---- backlog: written while NATS is unreachable, drained after a restart ------------
  let backlog: BacklogResult | undefined;
  if (runAll || cfg.only.some((o) => "backlog".includes(o))) {
    await relayCatchUp();
    await stopServer(server);
    const nowhere = `nats://127.0.0.1:${await freePort()}`;
    server = await startServer(nowhere);
    await loadgen.retarget(
      `http://127.0.0.1:${server.grpcPort}`,
      `http://127.0.0.1:${server.httpPort}`,
    );
    const perCall = Math.min(100, batchSize);
    log(
      `backlog: writing ${cfg.backlogEvents} events (BatchAddGroupMembers of ${perCall}) with NATS unreachable`,
    );
    const written = await loadgen.run(
      spec(
        { op: "BatchAddGroupMembers", door: "grpc", concurrency: 16 },
        {
          warmupSeconds: 0,
          maxCalls: Math.ceil(cfg.backlogEvents / perCall),
          seconds: cfg.drainTimeoutSeconds,
          batchSize: perCall,
        },
      ),
    );
    checkServer();
    const waiting = await unpublished();
    await stopServer(server);
    const before = (await jsm.streams.info(stream)).state;
    log(`backlog: ${waiting} events waiting in the outbox; starting a server with NATS reachable`);
    const spawnedAt = performance.now();
    server = await startServer(SHARED_NATS_URL);
    const cpuAtStart = cpuSeconds(server.pid);
    let state = before;
    const drainDeadline = performance.now() + cfg.drainTimeoutSeconds * 1000;
    while (state.messages < before.messages + waiting && performance.now() < drainDeadline) {
      await sleep(50);
      state = (await jsm.streams.info(stream)).state;
    }
    const allInAt = performance.now();
    const serverCpu = round((cpuSeconds(server.pid) - cpuAtStart) / ((allInAt - spawnedAt) / 1000));
    const stored = state.messages - before.messages;
    const stamp = async (seq: number) =>
      stored > 0 ? (await jsm.streams.getMessage(stream, { seq })).time.getTime() : 0;
    const drainSeconds =
      ((await stamp(state.last_seq)) - (await stamp(before.last_seq + 1))) / 1000;
    backlog = {
      events: stored,
      written: `${written.items} members added by ${written.ok} BatchAddGroupMembers calls of ${perCall} over ${Math.min(written.ok, dataset.groups)} groups, 16 in flight`,
      writeSeconds: round(written.seconds),
      drainSeconds: round(drainSeconds, 3),
      eventsPerSecond: round((stored - 1) / Math.max(drainSeconds, 1e-3), 0),
      fromServerStartSeconds: round((allInAt - spawnedAt) / 1000),
      serverCpu,
    };
    log(`backlog: ${JSON.stringify(backlog)}`);
    if (stored < waiting) log(`backlog: only ${stored} of ${waiting} events reached the stream`);
  }
  clearInterval(sampler);
  checkServer();
  await stopServer(server);
  server = undefined;

  // ---- results ----------------------------------------------------------------
  const finalInfo = await loadgen.info();
  const others = results.map((r) => r.cpu.other);
  const notes: string[] = [];
  if (finalInfo.pairWraps > 0)
    notes.push(
      `A group ran out of fresh (group, membership) pairs and started over ${finalInfo.pairWraps} time(s) (the data set is too small for the run), so some adds/removes were idempotent no-ops.`,
    );
  const partial: Omit<BenchResults, "targets"> = {
    name: cfg.name,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: round((performance.now() - t0) / 1000, 1),
    config: { ...cfg },
    machine,
    resumeProbe,
    load: {
      loadAverageAtStart,
      loadAverageAtEnd: loadAverage(),
      otherCoresMean: round(others.reduce((a, b) => a + b, 0) / Math.max(1, others.length)),
      otherCoresMax: Math.max(0, ...others),
    },
    dataset: { ...dataset, deepCursorDepth: depth, batchSize },
    seed: seedReport,
    cases: results,
    relay: { latency: relayLatency, backlog },
    memory: {
      maxRssMb: round(Math.max(0, ...rssSamples.map((s) => s.mb)), 1),
      peakRssMb: round(peakRssMb, 1),
      soak,
    },
    pairWraps: finalInfo.pairWraps,
    notes,
  };
  const final: BenchResults = { ...partial, targets: evaluateTargets(partial) };
  mkdirSync(path.dirname(cfg.out), { recursive: true });
  writeFileSync(cfg.out, JSON.stringify(final, null, 2) + "\n");
  log(`wrote ${cfg.out}`);
  if (cfg.markdown) {
    writeMarkdown("BENCHMARKS.md", final);
    log("updated BENCHMARKS.md");
  }
  for (const t of final.targets) log(`${t.met ? "met     " : "NOT MET "} ${t.text}: ${t.measured}`);
} finally {
  await cleanUp();
}

/**
 * Stops what this run started (by PID) and removes its database and stream,
 * once: an interrupted run gets here from its signal handler and again from
 * the main flow's `finally`.
 */
function cleanUp(): Promise<void> {
  return (cleaning ??= cleanUpOnce());
}

async function cleanUpOnce(): Promise<void> {
  await loadgen?.close().catch(() => undefined);
  if (server) {
    stoppingServers.get(server.pid)?.();
    await server.kill("SIGTERM").catch(() => undefined);
  }
  if (nc) {
    const jsm = await nc.jetstreamManager().catch(() => undefined);
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc.drain().catch(() => undefined);
  }
  await db?.drop().catch(() => undefined);
}
