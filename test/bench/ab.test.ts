import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { AbResults, AbRound } from "../../bench/lib/ab.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(path.join(tmpdir(), "groups-ab-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const git = (...args: string[]) =>
  execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();

/**
 * `npm run bench:ab` end to end: HEAD from a worktree of its own against the
 * working tree, two short rounds of each call. It must answer every call on
 * both builds, account their CPU (and, on MariaDB, the database's), write its
 * results and leave no worktree behind. How fast either side was is not
 * asserted. On the embedded store: a read on each door and a write; on
 * MariaDB: the reads of the seeded membership graph.
 */
const RUNS = [
  { store: "sqlite", calls: ["grpc GetGroup", "connect GetGroup", "grpc Add/RemoveGroupMember"] },
  {
    store: "mariadb",
    calls: ["grpc CheckGroupMembership", "grpc ListGroupsForOrganizationMembership"],
  },
] as const;

describe("A/B of two builds", () => {
  it.each(RUNS)(
    "runs both builds side by side on $store and writes the comparison",
    { timeout: 120_000 },
    async ({ store, calls }) => {
      const out = path.join(dir, `ab-${store}.json`);
      const worktreesBefore = git("worktree", "list", "--porcelain");
      const output: string[] = [];
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "bench/ab.ts",
          ...["--rounds", "2", "--seconds", "0.4", "--warmup", "0.2", "--out", out],
          ...["--store", store, "--calls", calls.join(",")],
          "HEAD",
          ".",
        ],
        { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
      );
      child.stdout.on("data", (d: Buffer) => output.push(d.toString()));
      child.stderr.on("data", (d: Buffer) => output.push(d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code, output.join("")).toBe(0);

      const r = JSON.parse(readFileSync(out, "utf8")) as AbResults;
      expect(r.store).toBe(store);
      expect(r.cases.map((c) => c.call)).toEqual(calls);
      const head = git("rev-parse", "HEAD");
      const sum = (rounds: AbRound[], f: (r: AbRound) => number | undefined) =>
        rounds.reduce((s, x) => s + (f(x) ?? NaN), 0);
      for (const c of r.cases) {
        expect(c.a.ref).toBe("HEAD");
        expect(c.a.commit).toBe(head);
        expect(c.b.commit.startsWith(head)).toBe(true);
        for (const side of [c.a, c.b]) {
          expect(side.rounds).toHaveLength(2);
          for (const round of side.rounds) expect(round.calls).toBeGreaterThan(0);
          expect(sum(side.rounds, (x) => x.cpuSeconds)).toBeGreaterThan(0);
          if (store === "mariadb")
            expect(sum(side.rounds, (x) => x.databaseCpuSeconds)).toBeGreaterThan(0);
        }
        expect(c.cpuUsPerCall.pairs).toBe(2);
        expect(Number.isFinite(c.cpuUsPerCall.mean)).toBe(true);
        expect(c.databaseCpuUsPerCall === undefined).toBe(store === "sqlite");
      }
      expect(output.join("")).toContain("B − A  CPU:");
      if (store === "mariadb") expect(output.join("")).toContain("B − A  database CPU:");
      expect(git("worktree", "list", "--porcelain")).toBe(worktreesBefore);
    },
  );
});
