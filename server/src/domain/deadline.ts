import { AsyncLocalStorage } from "node:async_hooks";
import { DomainError } from "./errors.js";

/**
 * The deadline of the call being served, carried implicitly so the store can
 * refuse to commit work whose caller has already been told it failed.
 */
const current = new AsyncLocalStorage<CallDeadline>();

/** When the current call stops being worth finishing: its client left, or its time ran out. */
export interface CallDeadline {
  /** The transport's signal: aborted when the client cancels. */
  readonly cancelled: Pick<AbortSignal, "aborted">;
  /** performance.now() at which the call's time runs out. */
  readonly at: number;
}

export const deadlineExceeded = () =>
  new DomainError(
    "deadline_exceeded",
    "DEADLINE_EXCEEDED",
    "the call did not finish within its deadline",
  );

export function withDeadline<T>(deadline: CallDeadline, work: () => T): T {
  return current.run(deadline, work);
}

/** Runs `work` outside any call: background work a call started must not inherit its deadline. */
export function outsideCall<T>(work: () => T): T {
  return current.exit(work);
}

/** The deadline of the call being served, if any. */
export function currentDeadline(): CallDeadline | undefined {
  return current.getStore();
}

/** Whether `deadline` has passed (never, for work outside a call). */
export function isPast(deadline: CallDeadline | undefined): boolean {
  return deadline !== undefined && (deadline.cancelled.aborted || performance.now() >= deadline.at);
}

/**
 * The deadline of work done for several calls at once: it passes as soon as
 * any of theirs does, so the shared work never commits after one of its
 * callers was told it failed. Undefined when none of them has one.
 */
export function earliestOf(deadlines: (CallDeadline | undefined)[]): CallDeadline | undefined {
  const set = deadlines.filter((d): d is CallDeadline => d !== undefined);
  if (set.length <= 1) return set[0];
  return {
    cancelled: {
      get aborted() {
        return set.some((d) => d.cancelled.aborted);
      },
    },
    at: Math.min(...set.map((d) => d.at)),
  };
}

/** Runs `work` under `deadline`, or as it is when there is none. */
export function underDeadline<T>(deadline: CallDeadline | undefined, work: () => T): T {
  return deadline ? current.run(deadline, work) : work();
}

/** Throws DEADLINE_EXCEEDED when the current call's deadline has passed. */
export function throwIfPastDeadline(): void {
  if (isPast(current.getStore())) throw deadlineExceeded();
}
