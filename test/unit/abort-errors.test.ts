import { beforeAll, describe, expect, it } from "vitest";
import { useStacklessAbortErrors } from "../../server/src/ops/abort-errors.js";

/** The lines of a stack that name a frame ("    at …"). */
const frames = (stack: string | undefined) =>
  (stack ?? "").split("\n").filter((l) => /^\s+at /.test(l));

describe("stackless abort errors (server/src/ops/abort-errors.ts)", () => {
  beforeAll(() => {
    useStacklessAbortErrors();
    useStacklessAbortErrors(); // a second server in the process installs nothing more
  });

  it("an abort without a reason gives a fresh AbortError, without a stack", () => {
    const a = new AbortController();
    const b = new AbortController();
    a.abort();
    b.abort();
    expect(a.signal.aborted).toBe(true);
    expect(a.signal.reason).toBeInstanceOf(DOMException);
    expect(a.signal.reason).toMatchObject({
      name: "AbortError",
      message: "This operation was aborted",
    });
    expect(frames((a.signal.reason as DOMException).stack)).toEqual([]);
    expect(b.signal.reason).not.toBe(a.signal.reason);
    expect(() => a.signal.throwIfAborted()).toThrow(DOMException);
  });

  it("an abort with a reason keeps it, and other errors keep their stacks", () => {
    const a = new AbortController();
    const reason = new Error("client went away");
    a.abort(reason);
    expect(a.signal.reason).toBe(reason);
    expect(frames(reason.stack).length).toBeGreaterThan(0);
    expect(frames(new DOMException("made by hand", "AbortError").stack).length).toBeGreaterThan(0);
    expect(frames(new Error("after").stack).length).toBeGreaterThan(0);
  });

  it("aborting an aborted signal does nothing: the first reason stays, listeners run once", () => {
    const a = new AbortController();
    let heard = 0;
    a.signal.addEventListener("abort", () => heard++);
    const first = new Error("first");
    a.abort(first);
    a.abort();
    a.abort(new Error("second"));
    expect(a.signal.reason).toBe(first);
    expect(heard).toBe(1);
  });

  it("linked signals see the reason the first one was aborted with", () => {
    const a = new AbortController();
    const any = AbortSignal.any([a.signal]);
    a.abort();
    expect(any.aborted).toBe(true);
    expect(any.reason).toBe(a.signal.reason);
  });
});
