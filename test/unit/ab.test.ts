import { describe, expect, it } from "vitest";
import {
  compare,
  pairedDifference,
  renderAb,
  renderCase,
  verdict,
  type AbResults,
  type AbSide,
} from "../../bench/lib/ab.js";

describe("A/B arithmetic (bench/lib/ab.ts)", () => {
  it("takes the mean of the pairs' differences and its t-interval", () => {
    // Differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.303.
    const d = pairedDifference([10, 20, 30], [11, 22, 33]);
    expect(d.pairs).toBe(3);
    expect(d.mean).toBeCloseTo(2, 10);
    expect(d.high - d.mean).toBeCloseTo(4.303 / Math.sqrt(3), 3);
    expect(d.mean - d.low).toBeCloseTo(4.303 / Math.sqrt(3), 3);
  });

  it("pairs by round, not by sorted value", () => {
    // B is A plus 5 every round: no spread at all, however far apart the rounds are.
    const d = pairedDifference([100, 300, 200, 400], [105, 305, 205, 405]);
    expect(d.mean).toBeCloseTo(5, 10);
    expect(d.low).toBeCloseTo(5, 10);
    expect(d.high).toBeCloseTo(5, 10);
  });

  it("leaves out a pair without a figure and has no interval under two pairs", () => {
    const d = pairedDifference([10, NaN], [12, 30]);
    expect(d.pairs).toBe(1);
    expect(d.mean).toBe(2);
    expect(d.low).toBe(-Infinity);
    expect(d.high).toBe(Infinity);
    expect(pairedDifference([], []).pairs).toBe(0);
  });

  it("calls a difference resolved only when its interval excludes zero", () => {
    expect(verdict({ mean: 5, low: 2, high: 8, pairs: 8 }, 100, "µs/call")).toBe(
      "+5.0 µs/call (+5.0 %), 95 % interval +2.0 … +8.0 µs/call (+2.0 % … +8.0 %)",
    );
    expect(verdict({ mean: 1, low: -2, high: 4, pairs: 8 }, 100, "µs/call")).toMatch(
      /: not resolved from zero$/,
    );
    expect(verdict({ mean: 1, low: -Infinity, high: Infinity, pairs: 1 }, 100, "µs")).toMatch(
      /too few rounds/,
    );
  });

  it("compares per-call CPU and rate from each side's rounds", () => {
    const side = (ref: string, cpu: number[]): AbSide => ({
      ref,
      commit: ref === "." ? "0123456789abcdef0123+dirty" : "fedcba9876543210fedc",
      rounds: cpu.map((c) => ({ calls: 1000, seconds: 2, cpuSeconds: c })),
    });
    // 0.3 s for 1,000 calls is 300 µs a call; B saves 20 µs in each round.
    const c = compare(
      "grpc GetGroup",
      side("HEAD", [0.3, 0.32, 0.31]),
      side(".", [0.28, 0.3, 0.29]),
    );
    expect(c.cpuUsPerCall.mean).toBeCloseTo(-20, 6);
    expect(c.callsPerSecond.mean).toBe(0);

    const results: AbResults = {
      startedAt: "2026-12-07T00:00:00.000Z",
      host: "h",
      inFlight: 16,
      rounds: 3,
      roundSeconds: 2,
      warmupSeconds: 2,
      store: "sqlite",
      cases: [c],
    };
    const text = renderAb(results);
    expect(text).toContain("A = HEAD (fedcba987654), B = . (0123456789ab+dirty)");
    expect(text).toContain("A  server CPU 310.0 µs/call (rounds 300.0–320.0), 500 calls/s");
    expect(text).toContain("B − A  CPU: -20.0 µs/call (-6.5 %)");
  });

  it("adds MariaDB's CPU per call when every round measured it", () => {
    const side = (ref: string, database: number[] | undefined): AbSide => ({
      ref,
      commit: "fedcba9876543210fedc",
      rounds: [0, 1, 2].map((i) => ({
        calls: 1000,
        seconds: 1,
        cpuSeconds: 0.3,
        ...(database && { databaseCpuSeconds: database[i] }),
      })),
    });
    // 0.2 s of MariaDB for 1,000 calls is 200 µs a call; B saves 30 µs in each round.
    const c = compare(
      "grpc CheckGroupMembership",
      side("A", [0.2, 0.21, 0.19]),
      side("B", [0.17, 0.18, 0.16]),
    );
    expect(c.databaseCpuUsPerCall?.mean).toBeCloseTo(-30, 6);
    const text = renderCase(c);
    expect(text).toContain(
      "A  server CPU 300.0 µs/call (rounds 300.0–300.0), database CPU 200.0 µs/call, 1000 calls/s",
    );
    expect(text).toContain("B − A  database CPU: -30.0 µs/call (-15.0 %)");

    // On the embedded store (no rounds with it), or if one side lacks it: no database figures.
    for (const bare of [
      compare("grpc GetGroup", side("A", undefined), side("B", undefined)),
      compare("grpc GetGroup", side("A", [0.2, 0.2, 0.2]), side("B", undefined)),
    ]) {
      expect(bare.databaseCpuUsPerCall).toBeUndefined();
      expect(renderCase(bare)).not.toContain("database CPU");
    }
  });
});
