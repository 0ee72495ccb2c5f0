/**
 * Abort reasons without a stack trace, for aborts that give none.
 *
 * connect-node aborts two AbortControllers at the end of every Connect call
 * (the call's context, then the request's when its response closes), both
 * without a reason, and Node.js 20 then builds a DOMException with a stack
 * trace each time — even for a signal already aborted, whose default reason
 * is thrown away. Measured with `npm run bench:ab`, skipping that is ~10 %
 * of a Connect read's server CPU (BENCHMARKS.md, Run log). Chromium's and
 * Safari's DOMExceptions carry no stack either; an abort given a reason
 * keeps it, stack and all, and every other error keeps its stack.
 *
 * Changes AbortController.prototype.abort for the whole process, once; the
 * behaviour the DOM standard defines is kept: the same AbortError, a fresh
 * one per signal, and aborting an aborted signal does nothing.
 */
const installed = Symbol.for("groups.stacklessAbortErrors");

export function useStacklessAbortErrors(): void {
  const proto = AbortController.prototype as AbortController & { [installed]?: true };
  if (proto[installed]) return;
  const abort = proto.abort;
  proto.abort = function (this: AbortController, reason?: unknown): void {
    if (this.signal.aborted) return;
    abort.call(this, reason === undefined ? stacklessAbortError() : reason);
  };
  proto[installed] = true;
}

function stacklessAbortError(): DOMException {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DOMException("This operation was aborted", "AbortError");
  } finally {
    Error.stackTraceLimit = limit;
  }
}
