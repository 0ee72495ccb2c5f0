/** The cursor part every List response carries. */
interface PageResponse {
  listMetadata?: { after: string };
}

/**
 * Walks every page of a List: calls `list` with `after` set from the previous
 * page's list_metadata.after until it is empty, yielding each item.
 *
 *   for await (const g of paginate((after) => client.listGroups({ organizationId, limit: 100, after }), (r) => r.groups)) …
 */
export async function* paginate<R extends PageResponse, T>(
  list: (after: string) => Promise<R>,
  items: (response: R) => T[],
): AsyncGenerator<T> {
  let after = "";
  do {
    const response = await list(after);
    yield* items(response);
    after = response.listMetadata?.after ?? "";
  } while (after !== "");
}
