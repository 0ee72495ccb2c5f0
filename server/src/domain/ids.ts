import { randomBytes } from "node:crypto";
import { monotonicFactory } from "ulid";

/** Type prefixes of the ids the server generates (prefix + "_" + ULID). */
export const ID_PREFIX = {
  organization: "org",
  membership: "om",
  group: "group",
  event: "event",
  apiKey: "key",
} as const;
export type IdKind = keyof typeof ID_PREFIX;

// Monotonic within this process, so ids minted in the same millisecond still
// sort in creation order (lists are ordered by id).
// The default source asks the OS for one byte per character (16 calls per id);
// this draws the same CSPRNG bytes 4 KiB at a time.
let entropy = Buffer.alloc(0);
let used = 0;
function randomFraction(): number {
  if (used >= entropy.length) {
    entropy = randomBytes(4096);
    used = 0;
  }
  return entropy[used++] / 256;
}
const nextUlid = monotonicFactory(randomFraction);

export function newId(kind: IdKind): string {
  return `${ID_PREFIX[kind]}_${nextUlid()}`;
}

/** A bare ULID (request ids). */
export const newUlid = (): string => nextUlid();

// Crockford base32, canonical upper case; the first character is 0-7 because a
// ULID's 48-bit timestamp cannot exceed 7ZZZZZZZZZ.
const ULID = "[0-7][0-9A-HJKMNP-TV-Z]{25}";
const PATTERNS: Record<IdKind, RegExp> = {
  organization: new RegExp(`^org_${ULID}$`),
  membership: new RegExp(`^om_${ULID}$`),
  group: new RegExp(`^group_${ULID}$`),
  event: new RegExp(`^event_${ULID}$`),
  apiKey: new RegExp(`^key_${ULID}$`),
};

export function isId(kind: IdKind, value: string): boolean {
  return PATTERNS[kind].test(value);
}
