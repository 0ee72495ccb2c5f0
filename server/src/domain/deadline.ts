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
  readonly cancelled: AbortSignal;
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

/** Throws DEADLINE_EXCEEDED when the current call's deadline has passed. */
export function throwIfPastDeadline(): void {
  const d = current.getStore();
  if (d && (d.cancelled.aborted || performance.now() >= d.at)) throw deadlineExceeded();
}
