import { describe, expect, it } from "vitest";
import { Combiner, type Pending } from "../../server/src/domain/combiner.js";
import { CallDeadline } from "../../server/src/domain/deadline.js";

/** A combiner whose units wait until the test releases them, recording what each unit got. */
function gatedCombiner(limits: { maxRunning: number; maxBatch: number; shareEvenly?: boolean }) {
  const units: { inputs: number[]; release: () => void }[] = [];
  const combiner = new Combiner<number, number>(async (batch: Pending<number, number>[]) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    units.push({ inputs: batch.map((p) => p.input), release });
    await gate;
    for (const p of batch) p.resolve(p.input * 10);
  }, limits);
  return { combiner, units };
}

const tick = () => new Promise((r) => setImmediate(r));
const farDeadline = () =>
  new CallDeadline(new AbortController().signal, performance.now() + 60_000);

describe("Combiner (group commit for single member changes)", () => {
  it("a request alone runs at the end of the event loop's current phase, in a unit of its own", async () => {
    const { combiner, units } = gatedCombiner({ maxRunning: 2, maxBatch: 64 });
    const answer = combiner.submit(1);
    expect(units).toEqual([]);
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1]]);
    units[0].release();
    expect(await answer).toBe(10);
  });

  it("requests arriving in one phase go together, at most maxBatch per unit", async () => {
    const { combiner, units } = gatedCombiner({ maxRunning: 2, maxBatch: 3 });
    const answers = [1, 2, 3, 4, 5, 6, 7].map((i) => combiner.submit(i));
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    units[0].release();
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    units[1].release();
    units[2].release();
    expect(await Promise.all(answers)).toEqual([10, 20, 30, 40, 50, 60, 70]);
  });

  it("shared evenly, requests arriving together are split among the units that can start, at most maxBatch per unit", async () => {
    const { combiner, units } = gatedCombiner({ maxRunning: 2, maxBatch: 16, shareEvenly: true });
    const answers = Array.from({ length: 15 }, (_, i) => combiner.submit(i + 1));
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([
      [1, 2, 3, 4, 5, 6, 7, 8],
      [9, 10, 11, 12, 13, 14, 15],
    ]);
    // One unit free: what waits goes to it, up to maxBatch.
    answers.push(...Array.from({ length: 20 }, (_, i) => combiner.submit(i + 16)));
    await tick();
    units[0].release();
    await tick();
    expect(units[2].inputs).toEqual(Array.from({ length: 16 }, (_, i) => i + 16));
    units[1].release();
    await tick();
    expect(units[3].inputs).toEqual([32, 33, 34, 35]);
    units[2].release();
    units[3].release();
    expect(await Promise.all(answers)).toEqual(Array.from({ length: 35 }, (_, i) => (i + 1) * 10));
  });

  it("requests arriving while the running units are busy wait and are served together, at most maxBatch per unit", async () => {
    const { combiner, units } = gatedCombiner({ maxRunning: 1, maxBatch: 3 });
    const answers = [combiner.submit(1)];
    await tick();
    answers.push(...[2, 3, 4, 5, 6].map((i) => combiner.submit(i)));
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1]]);
    units[0].release();
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1], [2, 3, 4]]);
    units[1].release();
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1], [2, 3, 4], [5, 6]]);
    units[2].release();
    expect(await Promise.all(answers)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it("each request keeps the deadline of the call that submitted it", async () => {
    const deadline = farDeadline();
    const seen: unknown[] = [];
    const probe = new Combiner<number, number>(
      async (batch) => {
        seen.push(...batch.map((p) => p.deadline));
        batch.forEach((p) => p.resolve(0));
      },
      { maxRunning: 1, maxBatch: 64 },
    );
    await Promise.all([probe.submit(1, deadline), probe.submit(2, undefined)]);
    expect(seen).toEqual([deadline, undefined]);
  });

  it("a request whose caller gave up while it waited is answered DEADLINE_EXCEEDED and never run", async () => {
    const { combiner, units } = gatedCombiner({ maxRunning: 1, maxBatch: 64 });
    const first = combiner.submit(1);
    await tick();
    const cancel = new AbortController();
    const abandoned = combiner.submit(
      2,
      new CallDeadline(cancel.signal, performance.now() + 60_000),
    );
    const expired = combiner.submit(3, new CallDeadline(cancel.signal, performance.now() - 1));
    const kept = combiner.submit(4);
    cancel.abort();
    units[0].release();
    await first;
    await expect(abandoned).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    await expect(expired).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    await tick();
    expect(units.map((u) => u.inputs)).toEqual([[1], [4]]);
    units[1].release();
    expect(await kept).toBe(40);
  });

  it("past maxWaiting waiting requests, a new one fails at once and is never run", async () => {
    const units: Pending<number, number>[][] = [];
    const combiner = new Combiner<number, number>(
      async (batch) => {
        units.push(batch);
        await new Promise<void>(() => undefined); // never finishes: the waiting list stays full
      },
      { maxRunning: 1, maxBatch: 1, maxWaiting: { count: 2, overloaded: () => new Error("busy") } },
    );
    void combiner.submit(1);
    await tick(); // 1 runs
    void combiner.submit(2);
    void combiner.submit(3); // two waiting
    await expect(combiner.submit(4)).rejects.toThrow("busy");
    expect(units.map((u) => u.map((p) => p.input))).toEqual([[1]]);
  });

  it("a unit that throws fails its own requests only; the next unit still runs", async () => {
    let calls = 0;
    const combiner = new Combiner<number, number>(
      async (batch) => {
        calls++;
        if (batch.some((p) => p.input < 0)) throw new Error("unit failed");
        batch.forEach((p) => p.resolve(p.input));
      },
      { maxRunning: 1, maxBatch: 64 },
    );
    const failed = expect(combiner.submit(-1)).rejects.toThrow("unit failed");
    await tick();
    const next = combiner.submit(2);
    await failed;
    expect(await next).toBe(2);
    expect(calls).toBe(2);
  });
});
