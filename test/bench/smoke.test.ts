import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { afterAll, describe, expect, it } from "vitest";
import { buildPlan } from "../../bench/lib/plan.js";
import { renderResults } from "../../bench/lib/report.js";
import { RESUME_SETTINGS } from "../../bench/lib/resume-probe.js";
import type { BenchResults } from "../../bench/lib/results.js";
import { TEST_MYSQL_URL } from "../support/database.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(path.join(tmpdir(), "groups-bench-smoke-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `npm run bench:smoke` in its own process, with `env` on top; its output is kept. */
function startSmoke(env: Record<string, string>) {
  const chunks: string[] = [];
  const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke"], {
    cwd: root,
    env: { ...process.env, BENCH_MARKDOWN: "0", BENCH_ONLY: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d: Buffer) => chunks.push(d.toString()));
  child.stderr.on("data", (d: Buffer) => chunks.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  return { child, exited, output: () => chunks.join("") };
}

/** Whether process `pid` still runs. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `npm run bench:smoke` end to end, in its own process: it must finish and
 * write a results file with every case of the plan, each of which completed
 * calls. No timing is asserted: the figures of a few-second run on a shared
 * machine mean nothing.
 */
describe("benchmark smoke", () => {
  it("runs every case and writes the results", { timeout: 180_000 }, async () => {
    const out = path.join(dir, "smoke.json");
    const run = startSmoke({ BENCH_OUT: out });
    expect(await run.exited, run.output()).toBe(0);

    const r = JSON.parse(readFileSync(out, "utf8")) as BenchResults;
    const expected = buildPlan([16], []).map((c) => c.key);
    expect(r.cases.map((c) => c.key).sort()).toEqual([...expected].sort());
    // Every add and remove changed something: no group ran out of fresh pairs.
    expect(r.pairWraps, r.notes.join(" ")).toBe(0);
    for (const c of r.cases) {
      expect(
        c.ok,
        `${c.key}: no call completed (${JSON.stringify(c.errorSamples)})`,
      ).toBeGreaterThan(0);
      expect(c.errors, `${c.key}: ${JSON.stringify(c.errorSamples)}`).toBe(0);
      expect(c.items, c.key).toBeGreaterThan(0);
      expect(c.latency.count, c.key).toBe(c.ok);
    }
    for (const c of r.cases.filter((c) => c.kind === "service"))
      expect(c.ratios.sameSql, c.key).toBeGreaterThan(0);
    // The resume probe ran every pause and measured both main threads' CPU.
    expect(r.resumeProbe?.settings.map(({ inFlight, pauseMs }) => ({ inFlight, pauseMs }))).toEqual(
      RESUME_SETTINGS,
    );
    for (const s of r.resumeProbe!.settings) {
      const setting = `${s.inFlight} in flight, ${s.pauseMs} ms`;
      expect(s.calls, setting).toBeGreaterThan(0);
      expect(s.clientMsPerCall, setting).toBeGreaterThan(0);
      expect(s.serverMsPerCall, setting).toBeGreaterThan(0);
    }
    expect(renderResults(r)).toMatch(
      /\| Resuming after a sleep \| .*back to back [\d.]+ \/ [\d.]+ ms.*; 16 in flight [\d.]+ \/ [\d.]+ ms/,
    );
    // Each process's sleeps were counted: the server sleeps between the calls it serves,
    // MariaDB between the statements the raw baselines send it.
    for (const c of r.cases) expect(c.cpu.sleeps, c.key).toBeDefined();
    for (const c of r.cases.filter((c) => c.kind === "service"))
      expect(c.cpu.sleeps!.server, c.key).toBeGreaterThan(0);
    for (const c of r.cases.filter((c) => c.door === "mysql2"))
      expect(c.cpu.sleeps!.mariadb, c.key).toBeGreaterThan(0);
    // MariaDB's counters per call: the raw two-INSERT transaction is four statements writing two rows;
    // every service write writes rows, and a check reads them.
    // The counters are read as the window opens and closes, so the transactions in flight
    // then are counted only in part: each per-call figure may fall short by that many.
    const twoInsert = r.cases.find((c) => c.op === "raw.twoInsertTx")!;
    const partial = twoInsert.concurrency / twoInsert.items;
    expect(twoInsert.db?.statements).toBeGreaterThanOrEqual(4 * (1 - partial));
    expect(twoInsert.db?.rowsWritten).toBeGreaterThanOrEqual(2 * (1 - partial));
    expect(twoInsert.db?.fsyncs).toBeGreaterThan(0);
    for (const c of r.cases.filter((c) => c.kind === "service" && c.writes))
      expect(c.db?.rowsWritten, c.key).toBeGreaterThan(0);
    const check = r.cases.find((c) => c.kind === "service" && c.op === "CheckGroupMembership")!;
    expect(check.db?.rowsRead).toBeGreaterThan(0);
    expect(check.db?.pageReads).toBeGreaterThan(0);
    expect(renderResults(r)).toMatch(/\| mysql2 raw\.twoInsertTx \| [\d.]+ \| [\d.]+ \| /);
    // The service's shared-work metrics: every single add or remove ran in a shared transaction,
    // every check and group list in a shared statement, each taking real time; no other case
    // reports one.
    const sharedBy = (c: (typeof r.cases)[number]) =>
      c.kind !== "service"
        ? undefined
        : /^(AddGroupMember|RemoveGroupMember)/.test(c.op)
          ? "transaction"
          : /^(CheckGroupMembership|ListGroupsForOrganizationMembership)$/.test(c.op)
            ? "statement"
            : undefined;
    for (const c of r.cases) {
      const unit = sharedBy(c);
      expect(c.shared?.unit, c.key).toBe(unit);
      if (!unit) continue;
      expect(c.shared?.callsPerUnit, c.key).toBeGreaterThanOrEqual(1);
      expect(c.shared?.msPerUnit, c.key).toBeGreaterThan(0);
    }
    expect(renderResults(r)).toMatch(
      /\| gRPC AddGroupMember\.hot \| 16 \| [\d,]+ \| transaction \| [\d,]+ \| [\d.]+ \| /,
    );
    expect(renderResults(r)).toMatch(
      /\| gRPC CheckGroupMembership \| 16 \| [\d,]+ \| statement \| [\d,]+ \| [\d.]+ \| /,
    );
    // A reference run again next to a target's case is the one that case's ratio uses.
    const neighbours = r.cases.filter((c) => c.nextTo);
    expect(neighbours.length).toBeGreaterThan(0);
    for (const n of neighbours) {
      const c = r.cases.find(
        (c) => c.kind === "service" && c.door === "grpc" && c.op === n.nextTo,
      )!;
      const [now, atStart] =
        n.op === "Health.Check"
          ? [c.ratios.trivialRpc, c.ratios.trivialRpcAtStart]
          : [c.ratios.twoInsertTx, c.ratios.twoInsertTxAtStart];
      expect(now, c.key).toBeCloseTo(c.perSecond / n.perSecond, 2);
      expect(atStart, c.key).toBeGreaterThan(0);
    }

    expect(r.relay.latency).toHaveLength(2);
    for (const l of r.relay.latency) {
      expect(l.calls.ok, l.label).toBeGreaterThan(0);
      expect(l.streamLatency.count, l.label).toBeGreaterThan(0);
      expect(l.serverLag.events, l.label).toBeGreaterThan(0);
    }
    expect(r.relay.backlog?.events).toBeGreaterThan(0);
    expect(r.memory.soak.calls.ok).toBeGreaterThan(0);
    expect(r.memory.soak.series.length).toBeGreaterThan(0);
    expect(r.memory.peakRssMb).toBeGreaterThan(0);
    expect(r.seed.rows.group_memberships).toBeGreaterThan(0);
    expect(r.targets.length).toBeGreaterThanOrEqual(12);
  });

  it("runs the relay section alone (BENCH_ONLY=relay)", { timeout: 180_000 }, async () => {
    // No case writes before it, so the service has not created its stream yet.
    const out = path.join(dir, "relay-only.json");
    const run = startSmoke({ BENCH_OUT: out, BENCH_ONLY: "relay" });
    expect(await run.exited, run.output()).toBe(0);
    const r = JSON.parse(readFileSync(out, "utf8")) as BenchResults;
    expect(r.cases).toEqual([]);
    expect(r.relay.latency).toHaveLength(2);
    for (const l of r.relay.latency) expect(l.streamLatency.count, l.label).toBeGreaterThan(0);
  });

  it("cleans up after itself when interrupted mid-case", { timeout: 120_000 }, async () => {
    // One long case, so the interrupt lands while calls are in flight.
    const run = startSmoke({
      BENCH_OUT: path.join(dir, "interrupted.json"),
      BENCH_ONLY: "grpc Health.Check @",
      BENCH_SECONDS: "60",
    });
    const started = async () => {
      for (;;) {
        const m = /database (\S+);[\s\S]*server pid (\d+), load generator pid (\d+)/.exec(
          run.output(),
        );
        if (m) return { database: m[1], pids: [Number(m[2]), Number(m[3])] };
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const { database, pids } = await Promise.race([
      started(),
      run.exited.then((code) => {
        throw new Error(`the run ended (${code}) before its first case:\n${run.output()}`);
      }),
    ]);
    await new Promise((r) => setTimeout(r, 2_000));
    // Ctrl-C under `npm run bench` reaches the run twice: from the terminal and relayed by tsx.
    run.child.kill("SIGINT");
    run.child.kill("SIGINT");
    expect(await run.exited, run.output()).toBe(130);

    expect(run.output()).toMatch(/SIGINT: cleaning up/);
    expect(run.output()).not.toMatch(/Unhandled|ERR_IPC|EPIPE|\n\s+at /);
    for (const pid of pids) expect(running(pid), `process ${pid}`).toBe(false);
    const admin = await mysql.createConnection(TEST_MYSQL_URL);
    const [rows] = await admin.query("SHOW DATABASES LIKE ?", [database]);
    await admin.end();
    expect(rows).toEqual([]);
  });
});
