import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { sleepCount } from "../../bench/lib/proc.js";

/** The benchmark's count of how often a process's threads went to sleep (Linux /proc). */
describe("bench sleepCount", () => {
  it("counts every time this process waits for a timer", async () => {
    const before = sleepCount(process.pid);
    for (let i = 0; i < 5; i++) await sleep(20);
    expect(sleepCount(process.pid) - before).toBeGreaterThanOrEqual(5);
  });

  it("is NaN for a process that is gone", () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    expect(sleepCount(gone)).toBeNaN();
    expect(sleepCount(undefined)).toBeNaN();
  });
});
