import type { OpName } from "./ops.js";

/**
 * The service's shared work as its own metrics describe it, between the two
 * ends of a case's measured window: the shared transactions that served single
 * adds and removes (group commit), or the shared statements that answered
 * CheckGroupMembership and ListGroupsForOrganizationMembership — how many
 * there were, how many calls each served and how long each ran. Set beside a
 * call's latency it says where the call's time went: in its transaction or
 * statement, or outside it (the front door, the network and the load
 * generator).
 */
export interface SharedWork {
  unit: "transaction" | "statement";
  unitsPerSecond: number;
  callsPerUnit: number;
  /** Mean time from a unit's start to its commit (transaction) or answer (statement). */
  msPerUnit: number;
}

interface Source {
  unit: SharedWork["unit"];
  /** Histogram of calls per unit, and of seconds per unit (with their label selector). */
  calls: string;
  seconds: string;
  labels: string;
}

function sourceOf(op: OpName): Source | undefined {
  if (/^(AddGroupMember|RemoveGroupMember)\b/.test(op))
    return {
      unit: "transaction",
      calls: "groups_member_changes_per_transaction",
      seconds: "groups_member_change_transaction_seconds",
      labels: "",
    };
  if (op === "CheckGroupMembership" || op === "ListGroupsForOrganizationMembership")
    return {
      unit: "statement",
      calls: "groups_reads_per_statement",
      seconds: "groups_read_statement_seconds",
      labels: `{method="${op}"}`,
    };
  return undefined;
}

async function totals(httpUrl: string, s: Source) {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const value = (series: string) => {
    const line = `\n${series}${s.labels} `;
    const at = text.indexOf(line);
    if (at < 0) return 0;
    const end = text.indexOf("\n", at + line.length);
    return Number(text.slice(at + line.length, end < 0 ? undefined : end));
  };
  return {
    calls: value(`${s.calls}_sum`),
    units: value(`${s.calls}_count`),
    seconds: value(`${s.seconds}_sum`),
  };
}

/**
 * Starts a window for a case of `op`; the returned function ends it
 * (undefined for an op the service does not share, or if no unit ran).
 */
export async function sharedWorkWindow(
  httpUrl: string,
  op: OpName,
): Promise<(windowSeconds: number) => Promise<SharedWork | undefined>> {
  const source = sourceOf(op);
  if (!source) return async () => undefined;
  const before = await totals(httpUrl, source);
  return async (windowSeconds) => {
    const after = await totals(httpUrl, source);
    const units = after.units - before.units;
    if (units <= 0 || windowSeconds <= 0) return undefined;
    return {
      unit: source.unit,
      unitsPerSecond: round(units / windowSeconds),
      callsPerUnit: round((after.calls - before.calls) / units),
      msPerUnit: round(((after.seconds - before.seconds) * 1000) / units),
    };
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
