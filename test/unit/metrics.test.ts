import { describe, expect, it } from "vitest";
import { Metrics } from "../../server/src/ops/metrics.js";

describe("metrics", () => {
  it("read the outbox backlog once per scrape for both of its gauges", async () => {
    let queries = 0;
    const metrics = new Metrics({
      pool: () => ({ inUse: 0, idle: 0, waiting: 0 }),
      backlog: async () => {
        queries++;
        return { count: 7, oldest: new Date(Date.now() - 5_000) };
      },
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain("\ngroups_outbox_backlog 7\n");
    const age = Number(/\ngroups_outbox_oldest_age_seconds (\S+)\n/.exec(text)?.[1]);
    expect(age).toBeGreaterThanOrEqual(5);
    expect(age).toBeLessThan(60);
    expect(queries).toBe(1);
  });
});
