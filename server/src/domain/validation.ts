import { invalidArgument, type FieldViolation } from "./errors.js";
import { isId, type IdKind } from "./ids.js";

// C0 and C1 controls (incl. NUL and DEL) and the bidi embedding/override/isolate
// characters that can disguise how a name reads.
const FORBIDDEN = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/u;
// A lone surrogate cannot be stored as utf8mb4 and means the input was not valid text.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Length in Unicode code points (what a user counts, and what VARCHAR(n) in utf8mb4 counts). */
export const codePoints = (s: string) => [...s].length;

/**
 * Collects every field problem of one request, then throws them together so
 * the caller learns all of them in one round trip.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  get count(): number {
    return this.list.length;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }

  /** Required id of the given kind. */
  id(field: string, kind: IdKind, value: string): string {
    if (value === "") this.add(field, "is required");
    else if (!isId(kind, value)) this.add(field, `is not a valid ${kind} id`);
    return value;
  }

  /** Optional id: "" means absent. */
  optionalId(field: string, kind: IdKind, value: string): string | undefined {
    if (value === "") return undefined;
    return this.id(field, kind, value);
  }

  /** Free text (names, descriptions): no control/bidi characters, bounded length. */
  text(field: string, value: string, opts: { min: number; max: number; trim: boolean }): string {
    // Checked before trimming: a tab or line break at an end is a control
    // character the caller sent (SPEC §2), not white space to tidy away.
    if (LONE_SURROGATE.test(value)) this.add(field, "is not valid UTF-8 text");
    else if (FORBIDDEN.test(value))
      this.add(field, "must not contain control or bidi-override characters");
    const v = opts.trim ? value.trim() : value;
    const len = codePoints(v);
    if (len < opts.min)
      this.add(field, opts.min === 1 ? "is required" : `must be at least ${opts.min} characters`);
    else if (len > opts.max) this.add(field, `must be at most ${opts.max} characters`);
    return v;
  }

  /** Opaque identifiers owned by callers (user ids, external ids, request ids): printable, no spaces at the ends. */
  token(field: string, value: string, opts: { min: number; max: number }): string {
    if (LONE_SURROGATE.test(value)) this.add(field, "is not valid UTF-8 text");
    else if (FORBIDDEN.test(value))
      this.add(field, "must not contain control or bidi-override characters");
    else if (value !== value.trim()) this.add(field, "must not start or end with whitespace");
    const len = codePoints(value);
    if (len < opts.min) this.add(field, "is required");
    else if (len > opts.max) this.add(field, `must be at most ${opts.max} characters`);
    return value;
  }
}
