import { describe, expect, it } from "vitest";
import { loadBenchConfig } from "../../bench/lib/config.js";

/** Where a run's results go and whether it rewrites BENCHMARKS.md, by how it was started. */
const output = (argv: string[], env: Record<string, string>) => {
  const cfg = loadBenchConfig(argv, env);
  return { out: cfg.out, markdown: cfg.markdown };
};

describe("bench results destination", () => {
  it("the full suite writes bench.json and BENCHMARKS.md", () => {
    expect(output([], {})).toEqual({ out: "bench/results/bench.json", markdown: true });
  });

  it("a trial run (cut down, profiled, varied) writes a git-ignored file and leaves BENCHMARKS.md alone", () => {
    for (const env of <Record<string, string>[]>[
      { BENCH_ONLY: "grpc Health" },
      { BENCH_SCALE: "0.1" },
      { BENCH_SECONDS: "10" },
      { BENCH_CONCURRENCY: "16" },
      { BENCH_SOAK_SECONDS: "0.1" },
      { BENCH_SERVER_CPU_PROF: "/tmp/prof" },
      { BENCH_GRPC_CLIENT: "connect" },
      { BENCH_SERVER_NODE_OPTIONS: "" },
    ]) {
      expect(output([], env), JSON.stringify(env)).toEqual({
        out: "bench/results/trial.tmp",
        markdown: false,
      });
    }
  });

  it("a named run keeps its name, cut down or not, and rewrites BENCHMARKS.md only when asked", () => {
    expect(output([], { BENCH_NAME: "run-abc" })).toEqual({
      out: "bench/results/run-abc.json",
      markdown: false,
    });
    expect(output([], { BENCH_NAME: "run-abc", BENCH_SCALE: "0.1" })).toEqual({
      out: "bench/results/run-abc.json",
      markdown: false,
    });
    expect(output([], { BENCH_ONLY: "grpc Health", BENCH_MARKDOWN: "1" })).toEqual({
      out: "bench/results/trial.tmp",
      markdown: true,
    });
  });

  it("settings that only label or place the results keep it the suite", () => {
    expect(output([], { BENCH_GIT_COMMIT: "abc", BENCH_DRAIN_TIMEOUT_SECONDS: "300" })).toEqual({
      out: "bench/results/bench.json",
      markdown: true,
    });
  });

  it("the smoke writes smoke.tmp", () => {
    expect(output(["--smoke"], {})).toEqual({ out: "bench/results/smoke.tmp", markdown: false });
  });
});
