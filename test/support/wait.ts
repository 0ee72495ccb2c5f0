export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long `until` waits by default. */
export const WAIT_MS = 10_000;

/**
 * Polls `check` until it returns true; fails with `what` at the deadline. An
 * error thrown by `check` ends the wait at once (use it to give up early).
 */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

/**
 * Polls `probe` until it returns a value, and resolves that value. Errors
 * thrown by `probe` are retried (a server may be restarting); the last one is
 * named when the wait times out.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
      );
    }
    await sleep(100);
  }
}
