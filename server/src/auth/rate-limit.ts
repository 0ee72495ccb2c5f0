import { DomainError } from "../domain/errors.js";

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per caller: `perSecond` calls sustained, `burst` at once.
 * Buckets idle long enough to be full again are forgotten, so memory follows
 * the number of active callers, not of callers ever seen.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /** Takes one token for `caller`, or throws RESOURCE_EXHAUSTED saying when one will be there. */
  take(caller: string): void {
    if (!this.enabled) return;
    const now = this.now();
    this.sweep(now);
    const b = this.buckets.get(caller) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(caller, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const retryAfterMs = Math.ceil(((1 - b.tokens) / this.perSecond) * 1000);
    throw new DomainError(
      "resource_exhausted",
      "RATE_LIMITED",
      `rate limit of ${this.perSecond} calls per second exceeded; retry in ${retryAfterMs} ms`,
      [],
      { limit_per_second: String(this.perSecond), burst: String(this.burst) },
      { retryAfterMs },
    );
  }

  private sweep(now: number): void {
    const refillMs = (this.burst / this.perSecond) * 1000;
    if (now - this.lastSweep < refillMs) return;
    this.lastSweep = now;
    for (const [caller, b] of this.buckets) if (now - b.at >= refillMs) this.buckets.delete(caller);
  }
}
