import { AsyncLocalStorage } from "node:async_hooks";
import { DomainError } from "./errors.js";

/**
 * The deadline of the call being served, carried implicitly so the store can
 * refuse to commit work whose caller has already been told it failed.
 */
const current = new AsyncLocalStorage<AbortSignal>();

export const deadlineExceeded = () =>
  new DomainError(
    "deadline_exceeded",
    "DEADLINE_EXCEEDED",
    "the call did not finish within its deadline",
  );

export function withDeadline<T>(signal: AbortSignal, work: () => T): T {
  return current.run(signal, work);
}

/** Runs `work` outside any call: background work a call started must not inherit its deadline. */
export function outsideCall<T>(work: () => T): T {
  return current.exit(work);
}

/** Throws DEADLINE_EXCEEDED when the current call's deadline has passed. */
export function throwIfPastDeadline(): void {
  if (current.getStore()?.aborted) throw deadlineExceeded();
}
