import { DomainError } from "./errors.js";

export const deadlineExceeded = () =>
  new DomainError(
    "deadline_exceeded",
    "DEADLINE_EXCEEDED",
    "the call did not finish within its deadline",
  );

/**
 * Where the work done under a deadline stands with the database: a COMMIT
 * once sent cannot be recalled, so the moment the time runs out and the moment
 * a COMMIT is sent must exclude each other. Whichever comes first decides the
 * call's answer: DEADLINE_EXCEEDED with nothing committed, or the commit's.
 */
export interface Deadline {
  /** The time ran out, the caller left, or the call was already answered DEADLINE_EXCEEDED. */
  readonly past: boolean;
  /** Just before a COMMIT is sent: DEADLINE_EXCEEDED if the time is up, else the call waits for it. */
  claimCommit(): void;
  /** The COMMIT claimCommit allowed has been answered (either way). */
  commitSettled(): void;
}

/** When the current call stops being worth finishing: its client left, or its time ran out. */
export class CallDeadline implements Deadline {
  private committing = 0;
  private expired = false;
  private answerWhenSettled: (() => void) | undefined;

  constructor(
    /** The transport's signal: aborted when the client cancels. */
    readonly cancelled: Pick<AbortSignal, "aborted">,
    /** performance.now() at which the call's time runs out. */
    readonly at: number,
  ) {}

  get past(): boolean {
    return this.expired || this.cancelled.aborted || performance.now() >= this.at;
  }

  /**
   * The time ran out: `answer` (DEADLINE_EXCEEDED) runs now, or, with a COMMIT
   * on its way, once that has settled. A commit that succeeded has answered
   * the call by then; one that failed committed nothing.
   */
  expire(answer: () => void): void {
    if (this.committing > 0) {
      this.answerWhenSettled = answer;
      return;
    }
    this.expired = true;
    answer();
  }

  /** The checks of claimCommit without the claim (see DeadlineSet). */
  assertOpen(): void {
    if (this.past) throw deadlineExceeded();
  }

  claimCommit(): void {
    this.assertOpen();
    this.committing++;
  }

  commitSettled(): void {
    if (--this.committing > 0 || this.answerWhenSettled === undefined) return;
    const answer = this.answerWhenSettled;
    this.answerWhenSettled = undefined;
    this.expired = true;
    // After the microtasks that carry a successful commit's result to the
    // caller, so that result is the answer; a call whose change was not in the
    // commit (one a shared unit left to run alone) is answered now.
    setImmediate(answer);
  }
}

/**
 * The deadline of work done for several calls at once: it passes as soon as
 * any of theirs does, so the shared work never commits after one of its
 * callers was told it failed, and a commit it sends holds back every one of
 * their DEADLINE_EXCEEDED answers.
 */
class DeadlineSet implements Deadline {
  constructor(private readonly parts: CallDeadline[]) {}

  get past(): boolean {
    return this.parts.some((d) => d.past);
  }

  claimCommit(): void {
    // All or none: a throw must not leave one part waiting for a commit never sent.
    for (const d of this.parts) d.assertOpen();
    for (const d of this.parts) d.claimCommit();
  }

  commitSettled(): void {
    for (const d of this.parts) d.commitSettled();
  }
}

/** Whether `deadline` has passed (never, for work outside a call). */
export function isPast(deadline: Deadline | undefined): boolean {
  return deadline !== undefined && deadline.past;
}

/** The deadline of shared work (see DeadlineSet); undefined when none of the calls has one. */
export function earliestOf(deadlines: (CallDeadline | undefined)[]): Deadline | undefined {
  const set = deadlines.filter((d): d is CallDeadline => d !== undefined);
  if (set.length <= 1) return set[0];
  return new DeadlineSet(set);
}

/**
 * Sends a COMMIT for a call, unless its deadline has passed: a caller
 * answered DEADLINE_EXCEEDED never sees its change happen later, and one
 * whose COMMIT was sent in time gets the commit's outcome. Work outside any
 * call (the reaper, the relay) has no deadline.
 */
export async function commitInTime(
  deadline: Deadline | undefined,
  commit: () => Promise<void>,
): Promise<void> {
  if (deadline === undefined) return commit();
  deadline.claimCommit();
  try {
    await commit();
  } finally {
    deadline.commitSettled();
  }
}
