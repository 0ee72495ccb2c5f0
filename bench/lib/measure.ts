import { Histogram, type LatencySummary } from "./histogram.js";

/** One call of the operation under test; `k` counts calls. Resolves how many items it handled (default 1). */
export type Op = (k: number) => Promise<number | void>;

export interface Measurement {
  /** Measured window (s). */
  seconds: number;
  ok: number;
  errors: number;
  /** A few distinct error messages, with counts. */
  errorSamples: Record<string, number>;
  /** Successful calls per second. */
  perSecond: number;
  /** Items per second (e.g. memberships for a batch call); equals perSecond for single-item calls. */
  itemsPerSecond: number;
  items: number;
  latency: LatencySummary;
}

function errorKey(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return `${e?.code ?? ""} ${String(e?.message ?? err)}`.trim().slice(0, 160);
}

class Recorder {
  readonly hist = new Histogram();
  ok = 0;
  errors = 0;
  items = 0;
  readonly samples: Record<string, number> = {};

  success(ms: number, items: number | void) {
    this.ok++;
    this.items += items ?? 1;
    this.hist.record(ms);
  }

  failure(err: unknown) {
    this.errors++;
    const key = errorKey(err);
    if (key in this.samples || Object.keys(this.samples).length < 5)
      this.samples[key] = (this.samples[key] ?? 0) + 1;
  }

  result(seconds: number): Measurement {
    return {
      seconds,
      ok: this.ok,
      errors: this.errors,
      errorSamples: this.samples,
      perSecond: round(this.ok / seconds),
      itemsPerSecond: round(this.items / seconds),
      items: this.items,
      latency: this.hist.summary(),
    };
  }
}

/**
 * Closed loop: `concurrency` callers, each issuing its next call when the
 * previous one returns; `op` is told which caller (0…concurrency − 1) makes
 * the call, for per-caller state. Calls completing during the warm-up are not counted;
 * every call completing inside the measured window is (throughput by
 * completion time, latency from its own start). With `maxCalls` the window
 * ends when that many calls are done (or after `seconds` at the latest).
 */
export async function closedLoop(
  op: (k: number, caller: number) => ReturnType<Op>,
  opts: {
    concurrency: number;
    seconds: number;
    warmupSeconds: number;
    /** Issue at most this many calls (the window then ends when the last one returns). */
    maxCalls?: number;
  },
): Promise<Measurement> {
  const rec = new Recorder();
  const start = performance.now() + opts.warmupSeconds * 1000;
  // With maxCalls, `seconds` only caps the window.
  let end = start + opts.seconds * 1000;
  let k = 0;
  let finishedAt = start;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, caller) => {
      while (performance.now() < end && (opts.maxCalls === undefined || k < opts.maxCalls)) {
        const i = k++;
        const t0 = performance.now();
        let items: number | void = undefined;
        let failed: unknown;
        try {
          items = await op(i, caller);
        } catch (err) {
          failed = err ?? new Error("unknown failure");
        }
        const t1 = performance.now();
        // A window in which nothing completed (tiny smoke windows on a loaded machine) waits for one call.
        if (t1 > end && rec.ok + rec.errors === 0 && t1 < end + 30_000) end = t1;
        if (t1 < start || t1 > end) continue;
        if (failed !== undefined) rec.failure(failed);
        else rec.success(t1 - t0, items);
        finishedAt = t1;
      }
    }),
  );
  const seconds =
    opts.maxCalls !== undefined ? (Math.min(finishedAt, end) - start) / 1000 : (end - start) / 1000;
  return rec.result(Math.max(seconds, 1e-3));
}

/**
 * Open loop: calls are started on a fixed schedule (`ratePerSecond`), whether
 * or not earlier ones have returned, up to `maxInFlight`; a call due while
 * that many are in flight is skipped and counted. Latency is from the call's
 * actual start.
 */
export async function openLoop(
  op: Op,
  opts: { ratePerSecond: number; seconds: number; warmupSeconds: number; maxInFlight: number },
): Promise<Measurement & { offeredPerSecond: number; skipped: number }> {
  const rec = new Recorder();
  const t0 = performance.now();
  const start = t0 + opts.warmupSeconds * 1000;
  const end = start + opts.seconds * 1000;
  let issued = 0;
  let inFlight = 0;
  let skipped = 0;
  const pending = new Set<Promise<void>>();
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * opts.ratePerSecond);
    while (issued < due) {
      const i = issued++;
      if (inFlight >= opts.maxInFlight) {
        if (performance.now() >= start) skipped++;
        continue;
      }
      inFlight++;
      const s = performance.now();
      const p = op(i).then(
        (items) => {
          const f = performance.now();
          if (f >= start && f <= end) rec.success(f - s, items);
        },
        (err) => {
          const f = performance.now();
          if (f >= start && f <= end) rec.failure(err);
        },
      );
      const tracked = p.finally(() => {
        inFlight--;
        pending.delete(tracked);
      });
      pending.add(tracked);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  return { ...rec.result(opts.seconds), offeredPerSecond: opts.ratePerSecond, skipped };
}

const round = (x: number) => Math.round(x * 10) / 10;
