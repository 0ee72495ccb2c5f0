import { describe, expect, it } from "vitest";
import { CallDeadline, commitInTime, earliestOf } from "../../server/src/domain/deadline.js";

/**
 * The moment a call's time runs out and the moment its COMMIT is sent
 * exclude each other (server/src/domain/deadline.ts): the first decides the
 * answer, so a caller told DEADLINE_EXCEEDED never has its change committed
 * and a change committed is never reported as failed.
 */
const open = () => new CallDeadline(new AbortController().signal, performance.now() + 60_000);
const tick = () => new Promise((r) => setImmediate(r));

/** A COMMIT whose acknowledgement the test releases. */
function gatedCommit() {
  let release!: () => void;
  const acked = new Promise<void>((r) => (release = r));
  return { commit: () => acked, release };
}

/** Nothing is answered while the COMMIT is held; then it is acknowledged and `done` awaited. */
async function holdThenAcknowledge(
  answers: string[],
  release: () => void,
  done: Promise<unknown>,
): Promise<void> {
  await tick();
  expect(answers).toEqual([]);
  release();
  await done;
  await tick();
}

describe("CallDeadline", () => {
  it("once expired, refuses to send a COMMIT", async () => {
    const d = open();
    const answers: string[] = [];
    d.expire(() => answers.push("deadline exceeded"));
    expect(answers).toEqual(["deadline exceeded"]);
    let sent = false;
    await expect(commitInTime(d, async () => void (sent = true))).rejects.toMatchObject({
      reason: "DEADLINE_EXCEEDED",
    });
    expect(sent).toBe(false);
  });

  it("with a COMMIT on its way, answers DEADLINE_EXCEEDED only after it settles, behind a result already sent", async () => {
    const d = open();
    const { commit, release } = gatedCommit();
    const answers: string[] = [];
    const committed = commitInTime(d, commit).then(() => answers.push("committed"));
    d.expire(() => answers.push("deadline exceeded"));
    await holdThenAcknowledge(answers, release, committed);
    expect(answers).toEqual(["committed", "deadline exceeded"]);
    expect(d.past).toBe(true);
  });

  it("a shared unit claims every caller's deadline or none", async () => {
    const a = open();
    const b = open();
    b.expire(() => undefined);
    const shared = earliestOf([a, b])!;
    await expect(commitInTime(shared, async () => undefined)).rejects.toMatchObject({
      reason: "DEADLINE_EXCEEDED",
    });
    // a was not left waiting for a commit that was never sent: it expires at once.
    const answers: string[] = [];
    a.expire(() => answers.push("a exceeded"));
    expect(answers).toEqual(["a exceeded"]);
  });

  it("a shared COMMIT holds back each caller's DEADLINE_EXCEEDED until it settles", async () => {
    const a = open();
    const b = open();
    const { commit, release } = gatedCommit();
    const done = commitInTime(earliestOf([a, b])!, commit);
    const answers: string[] = [];
    a.expire(() => answers.push("a exceeded"));
    b.expire(() => answers.push("b exceeded"));
    await holdThenAcknowledge(answers, release, done);
    expect(answers.sort()).toEqual(["a exceeded", "b exceeded"]);
  });
});
