import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { AbResults } from "../../bench/lib/ab.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(path.join(tmpdir(), "groups-ab-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const git = (...args: string[]) =>
  execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();

/**
 * `npm run bench:ab` end to end: HEAD from a worktree of its own against the
 * working tree, two short rounds of a read on each door and of a write. It must answer every call on
 * both builds, account their CPU, write its results and leave no worktree
 * behind. How fast either side was is not asserted.
 */
describe("A/B of two builds", () => {
  it("runs both builds side by side and writes the comparison", { timeout: 120_000 }, async () => {
    const out = path.join(dir, "ab.json");
    const worktreesBefore = git("worktree", "list", "--porcelain");
    const output: string[] = [];
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/ab.ts",
        ...["--rounds", "2", "--seconds", "0.4", "--warmup", "0.2", "--out", out],
        ...["--calls", "grpc GetGroup,connect GetGroup,grpc Add/RemoveGroupMember"],
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
    expect(r.cases.map((c) => c.call)).toEqual([
      "grpc GetGroup",
      "connect GetGroup",
      "grpc Add/RemoveGroupMember",
    ]);
    const head = git("rev-parse", "HEAD");
    for (const c of r.cases) {
      expect(c.a.ref).toBe("HEAD");
      expect(c.a.commit).toBe(head);
      expect(c.b.commit.startsWith(head)).toBe(true);
      for (const side of [c.a, c.b]) {
        expect(side.rounds).toHaveLength(2);
        for (const round of side.rounds) expect(round.calls).toBeGreaterThan(0);
        // CPU is read in 10 ms ticks: a short round can read 0, both rounds together not.
        expect(side.rounds.reduce((s, x) => s + x.cpuSeconds, 0)).toBeGreaterThan(0);
      }
      expect(c.cpuUsPerCall.pairs).toBe(2);
      expect(Number.isFinite(c.cpuUsPerCall.mean)).toBe(true);
    }
    expect(output.join("")).toContain("B − A  CPU:");
    expect(git("worktree", "list", "--porcelain")).toBe(worktreesBefore);
  });
});
