import { deadlineExceeded, isPast, type CallDeadline } from "./deadline.js";

/** A request waiting for its turn, with the deadline of the call that made it. */
export interface Pending<I, O> {
  readonly input: I;
  readonly deadline: CallDeadline | undefined;
  resolve(output: O): void;
  reject(err: unknown): void;
}

/**
 * Group commit: serves concurrent calls' requests in shared units of work.
 * At most `maxRunning` units run at once; requests that arrive meanwhile wait,
 * and the next unit takes up to `maxBatch` of them. Units start at the end of
 * the event loop's current phase (setImmediate): the calls decoded from one
 * burst of network reads all join the same unit instead of the first two
 * going alone and the rest queueing behind them, and the database thread a
 * unit's first query wakes does not preempt the burst's decoding on a busy
 * machine (measured: 1.3–1.7× the AddGroupMember calls per second at 16 in
 * flight, BENCHMARKS.md). A caller alone waits only for that phase to end,
 * while under load one unit — one transaction, one durable commit — serves
 * many calls, so the database does far fewer round trips and commits per call.
 *
 * `run` must settle every request it is given. It runs for no call in
 * particular: each request carries its own caller's deadline.
 */
export class Combiner<I, O> {
  private readonly waiting: Pending<I, O>[] = [];
  private running = 0;
  private gathering = false;

  constructor(
    private readonly run: (batch: Pending<I, O>[]) => Promise<void>,
    private readonly limits: {
      maxRunning: number;
      maxBatch: number;
      /**
       * Share the waiting requests evenly among the units that can start,
       * instead of the first unit taking up to maxBatch and the rest what is
       * left (see startUnits).
       */
      shareEvenly?: boolean;
      /** Past this many waiting requests, new ones fail at once with `overloaded()`. */
      maxWaiting?: { count: number; overloaded: () => Error };
    },
  ) {}

  /** `deadline`: the calling call's; a request whose deadline passes while it waits is not run. */
  submit(input: I, deadline?: CallDeadline): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const bound = this.limits.maxWaiting;
      if (bound && this.waiting.length >= bound.count) {
        reject(bound.overloaded());
        return;
      }
      this.waiting.push({ input, deadline, resolve, reject });
      if (this.gathering) return;
      this.gathering = true;
      setImmediate(() => {
        this.gathering = false;
        this.startUnits();
      });
    });
  }

  private startUnits(): void {
    while (this.running < this.limits.maxRunning && this.waiting.length > 0) {
      // Shared evenly, 16 calls arriving together at two idle units go 8 and
      // 8: one unit's statement runs while the other's answers are sent. The
      // first unit taking all 16 left the second idle, and the 16 answers then
      // went out together, came back together and were taken together again:
      // the service ran in lock step with its callers, one statement at a time
      // (CheckGroupMembership and ListGroupsForOrganizationMembership +20 % at
      // 16 in flight when shared evenly, BENCHMARKS.md).
      const take = this.limits.shareEvenly
        ? Math.ceil(this.waiting.length / (this.limits.maxRunning - this.running))
        : this.limits.maxBatch;
      // A request whose caller gave up while it waited is answered, not run.
      const batch = this.waiting.splice(0, Math.min(take, this.limits.maxBatch)).filter((p) => {
        if (!isPast(p.deadline)) return true;
        p.reject(deadlineExceeded());
        return false;
      });
      if (batch.length === 0) continue;
      this.running++;
      this.run(batch)
        .catch((err: unknown) => batch.forEach((p) => p.reject(err)))
        .finally(() => {
          this.running--;
          this.startUnits();
        });
    }
  }
}
