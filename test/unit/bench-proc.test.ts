import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { sleepsBetween, threadSleeps } from "../../bench/lib/proc.js";

/** The benchmark's count of how often a process's threads went to sleep (Linux /proc). */
describe("bench sleep counts", () => {
  it("counts every time this process waits for a timer", async () => {
    const before = threadSleeps(process.pid);
    for (let i = 0; i < 5; i++) await sleep(20);
    expect(sleepsBetween(before, threadSleeps(process.pid))).toBeGreaterThanOrEqual(5);
  });

  it("has nothing for a process that is gone", () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    expect(threadSleeps(gone)).toBeUndefined();
    expect(threadSleeps(undefined)).toBeUndefined();
    expect(sleepsBetween(threadSleeps(gone), new Map([["1", 5]]))).toBeNaN();
  });

  it("counts threads that started in between from zero and never goes negative", () => {
    const before = new Map([
      ["10", 100], // still there: +5
      ["11", 400], // exited: its sleeps are gone with it
      ["12", 900], // id reused by a new thread with 7
    ]);
    const after = new Map([
      ["10", 105],
      ["12", 7],
      ["13", 3], // new: +3
    ]);
    expect(sleepsBetween(before, after)).toBe(5 + 7 + 3);
  });
});
