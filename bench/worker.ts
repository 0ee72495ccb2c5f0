/**
 * The load generator: a process of its own (started by bench/run.ts with an
 * IPC channel), so the service's process only serves. It runs one case at a
 * time on request and answers with the measurement and the CPU each process
 * used meanwhile.
 */
import { closedLoop, openLoop, type Measurement } from "./lib/measure.js";
import { OpContext, type Door, type OpName, type WorkerInit } from "./lib/ops.js";
import { DbWorkMeter, type DbWork } from "./lib/db-work.js";
import { sharedWorkWindow, type SharedWork } from "./lib/shared-work.js";
import { cpuWindow, type CpuShares, type Pids } from "./lib/proc.js";

export interface RunSpec {
  op: OpName;
  door: Door;
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  /** Open loop at `rate` calls/s (at most `concurrency` in flight) instead of a closed loop. */
  rate?: number;
  /** Stop after this many calls instead of after `seconds`. */
  maxCalls?: number;
  batchSize?: number;
  pids: Pids;
}

export type RunResult = Measurement & {
  cpu: CpuShares;
  /** MariaDB's work per item during the measured window (absent if nothing completed). */
  db?: DbWork;
  /** The service's shared transactions or statements in the window (absent if none ran). */
  shared?: SharedWork;
  offeredPerSecond?: number;
  skipped?: number;
};

export type WorkerRequest =
  | { type: "init"; init: WorkerInit }
  | { type: "run"; spec: RunSpec }
  | { type: "retarget"; grpcUrl: string; httpUrl: string }
  | { type: "info" }
  | { type: "close" };

let ctx: OpContext | undefined;
let dbWork: DbWorkMeter | undefined;

/**
 * Starts a case's measured window: each process's CPU, MariaDB's counters and
 * the service's shared-work metrics; the returned function ends all three.
 */
function measuredWindow(pids: Pids, op: OpName) {
  const endCpu = cpuWindow(pids);
  // The counters explain the figures; a case does not fail for want of them.
  const endDb = dbWork!.start().catch(() => async () => undefined);
  const endShared = sharedWorkWindow(ctx!.init.httpUrl, op).catch(() => async () => undefined);
  return async (m: Measurement): Promise<{ cpu: CpuShares; db?: DbWork; shared?: SharedWork }> => {
    const cpu = endCpu();
    const [db, shared] = await Promise.all([
      (await endDb)(m.items).catch(() => undefined),
      (await endShared)(m.seconds).catch(() => undefined),
    ]);
    return { cpu, db, shared };
  };
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.type) {
    case "init":
      ctx = new OpContext(req.init);
      dbWork = new DbWorkMeter(req.init.databaseUrl);
      return null;
    case "retarget":
      ctx!.retarget(req.grpcUrl, req.httpUrl);
      return null;
    case "info":
      return { natsVersion: await ctx!.natsVersion(), pairWraps: ctx!.alloc.wraps };
    case "close":
      await ctx?.close();
      await dbWork?.close();
      return null;
    case "run": {
      const s = req.spec;
      const { op, close } = await ctx!.prepare(s.op, s.door, s.concurrency, {
        batchSize: s.batchSize,
      });
      let end: ReturnType<typeof measuredWindow> | undefined;
      const pids = { ...s.pids, loadgen: process.pid };
      const timer = setTimeout(() => (end = measuredWindow(pids, s.op)), s.warmupSeconds * 1000);
      try {
        const m =
          s.rate !== undefined
            ? await openLoop(op, {
                ratePerSecond: s.rate,
                seconds: s.seconds,
                warmupSeconds: s.warmupSeconds,
                maxInFlight: s.concurrency,
              })
            : await closedLoop(op, s);
        clearTimeout(timer);
        const window = end ? await end(m) : { cpu: cpuWindow(pids)() };
        return { ...m, ...window } satisfies RunResult;
      } finally {
        clearTimeout(timer);
        await close();
      }
    }
  }
}

/** Answers the orchestrator; one that is gone (an interrupted run) has nobody to answer. */
function reply(msg: { id: number; ok: boolean; value?: unknown; error?: string }): void {
  if (process.connected) process.send!(msg, undefined, {}, () => undefined);
}

process.on("message", (msg: { id: number; req: WorkerRequest }) => {
  handle(msg.req).then(
    (value) => reply({ id: msg.id, ok: true, value }),
    (err: unknown) => reply({ id: msg.id, ok: false, error: String((err as Error)?.stack ?? err) }),
  );
});
process.on("disconnect", () => process.exit(0));
