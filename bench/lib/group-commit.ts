/**
 * The service's group commit as its own metrics describe it, between the two
 * ends of a case's measured window: how many shared transactions served the
 * case's AddGroupMember/RemoveGroupMember calls, how many calls each took and
 * how long each ran (groups_member_changes_per_transaction and
 * groups_member_change_transaction_seconds). Set beside a call's latency it
 * says where the call's time went: in its transaction, or outside it (the
 * front door, the network and the load generator).
 */
export interface GroupCommit {
  transactionsPerSecond: number;
  callsPerTransaction: number;
  /** Mean time from a shared transaction's start to its commit. */
  msPerTransaction: number;
}

interface Totals {
  calls: number;
  transactions: number;
  seconds: number;
}

async function totals(httpUrl: string): Promise<Totals> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return {
    calls: value("groups_member_changes_per_transaction_sum"),
    transactions: value("groups_member_changes_per_transaction_count"),
    seconds: value("groups_member_change_transaction_seconds_sum"),
  };
}

/** Starts a window; the returned function ends it (undefined if no shared transaction ran). */
export async function groupCommitWindow(
  httpUrl: string,
): Promise<(windowSeconds: number) => Promise<GroupCommit | undefined>> {
  const before = await totals(httpUrl);
  return async (windowSeconds) => {
    const after = await totals(httpUrl);
    const transactions = after.transactions - before.transactions;
    if (transactions <= 0 || windowSeconds <= 0) return undefined;
    return {
      transactionsPerSecond: round(transactions / windowSeconds),
      callsPerTransaction: round((after.calls - before.calls) / transactions),
      msPerTransaction: round(((after.seconds - before.seconds) * 1000) / transactions),
    };
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
