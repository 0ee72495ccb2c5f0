import type { ObjectLiteral, SelectQueryBuilder } from "typeorm";
import type { Page, PageRequest } from "../domain/model.js";

/**
 * Runs one keyset page of `qb` on `keyColumn` (never OFFSET, so every page
 * costs the same). Fetches one extra row to learn whether a further page
 * exists. `before` scans backwards from the cursor and flips the rows back
 * into list order.
 */
export async function keysetPage<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  keyColumn: string,
  page: PageRequest,
  keyOf: (row: T) => string,
): Promise<Page<T>> {
  const backward = page.before !== undefined;
  const listAscending = page.order === "asc";
  const scanAscending = backward ? !listAscending : listAscending;
  const cursor = page.before ?? page.after;
  if (cursor !== undefined) {
    qb.andWhere(`${keyColumn} ${scanAscending ? ">" : "<"} :cursor`, { cursor });
  }
  const rows = await qb
    .orderBy(keyColumn, scanAscending ? "ASC" : "DESC")
    .limit(page.limit + 1)
    .getMany();
  const more = rows.length > page.limit;
  const items = rows.slice(0, page.limit);
  if (backward) items.reverse();
  const first = items.at(0);
  const last = items.at(-1);
  if (backward) {
    return { items, before: more && first ? keyOf(first) : "", after: last ? keyOf(last) : "" };
  }
  return {
    items,
    before: page.after !== undefined && first ? keyOf(first) : "",
    after: more && last ? keyOf(last) : "",
  };
}
