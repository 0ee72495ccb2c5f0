import type { IdKind } from "./ids.js";
import type { PageRequest, SortOrder } from "./model.js";
import type { Violations } from "./validation.js";

export const DEFAULT_PAGE_SIZE = 10;
export const MAX_PAGE_SIZE = 1000;

export interface PageInput {
  limit: number;
  before: string;
  after: string;
  /** "asc", "desc", or undefined for the default; anything else is a bad field. */
  order: string | undefined;
}

/**
 * Validates the WorkOS-style pagination fields: limit 0 means the default,
 * 1–1000 is taken as is, anything else is a bad field; `before` and `after`
 * are ids of the listed kind and exclusive of each other. The cursor's
 * existence is checked by the caller, which knows the list's scope.
 */
export function parsePage(v: Violations, input: PageInput, cursorKind: IdKind): PageRequest {
  if (!Number.isInteger(input.limit) || input.limit < 0 || input.limit > MAX_PAGE_SIZE) {
    v.add("limit", `must be between 1 and ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE})`);
  }
  const before = v.optionalId("before", cursorKind, input.before);
  const after = v.optionalId("after", cursorKind, input.after);
  if (before !== undefined && after !== undefined) {
    v.add("before", "cannot be combined with after");
  }
  if (input.order !== undefined && input.order !== "asc" && input.order !== "desc") {
    v.add("order", "must be ORDER_ASC or ORDER_DESC");
  }
  return {
    limit: input.limit === 0 ? DEFAULT_PAGE_SIZE : input.limit,
    before,
    after,
    order: (input.order as SortOrder | undefined) ?? "desc",
  };
}

/** The cursor a page request names, if any, with the field it came from. */
export function cursorOf(page: PageRequest): { field: "before" | "after"; id: string } | undefined {
  if (page.before !== undefined) return { field: "before", id: page.before };
  if (page.after !== undefined) return { field: "after", id: page.after };
  return undefined;
}
