/**
 * Comparing two builds of the service call by call (bench/ab.ts): the shape
 * of its results and the arithmetic that turns alternating rounds into one
 * difference with its uncertainty.
 *
 * Why per-call server CPU, in alternating rounds: on these shared 2-core
 * hosts the rate of a cut-down bench run moves ±15 % from one run to the
 * next, which buries a change of a few per cent. The CPU the server process
 * spends per call moves much less, and rounds of A and B taken in turn (ABBA)
 * see the same drift, so the difference of each pair cancels most of it.
 */

/** One side's share of a round: how many calls it answered and what they cost it. */
export interface AbRound {
  calls: number;
  seconds: number;
  /** Server process CPU (user + system) over the round. */
  cpuSeconds: number;
  /**
   * MariaDB's CPU over the round (--store mariadb): both builds share the one
   * database server, but only the side being driven calls it.
   */
  databaseCpuSeconds?: number;
}

export interface AbSide {
  /** What was asked for: a git ref, or "." for the working tree as it is. */
  ref: string;
  /** The commit it resolved to ("+dirty": the working tree had changes). */
  commit: string;
  rounds: AbRound[];
}

/** A difference B − A over paired rounds, with its 95 % interval. */
export interface Difference {
  mean: number;
  low: number;
  high: number;
  /** Pairs it was taken over. */
  pairs: number;
}

export interface AbCase {
  call: string;
  a: AbSide;
  b: AbSide;
  /** µs of server CPU per call, B − A. */
  cpuUsPerCall: Difference;
  /** Calls per second, B − A. */
  callsPerSecond: Difference;
  /** µs of MariaDB CPU per call, B − A, when the rounds measured it. */
  databaseCpuUsPerCall?: Difference;
}

export interface AbResults {
  startedAt: string;
  host: string;
  inFlight: number;
  /** Rounds per side per call, after one warm-up each. */
  rounds: number;
  roundSeconds: number;
  warmupSeconds: number;
  store: "sqlite" | "mariadb";
  cases: AbCase[];
}

const usPerCall = (r: AbRound, seconds: number | undefined) =>
  r.calls > 0 && seconds !== undefined ? (seconds / r.calls) * 1e6 : NaN;
export const cpuUsPerCall = (r: AbRound) => usPerCall(r, r.cpuSeconds);
export const databaseCpuUsPerCall = (r: AbRound) => usPerCall(r, r.databaseCpuSeconds);
export const callsPerSecond = (r: AbRound) => r.calls / r.seconds;

// Student's t, two-sided 95 %, by degrees of freedom 1…30; the normal 1.96 beyond.
const T_975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
  2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
  2.045, 2.042,
];

/**
 * The mean of b[i] − a[i] and its 95 % t-interval. Pairs whose figure is not
 * finite (a round with no calls) are left out. Under two pairs there is no
 * spread to go by: the interval is then unbounded.
 */
export function pairedDifference(a: number[], b: number[]): Difference {
  const d = a.map((x, i) => b[i] - x).filter((x) => Number.isFinite(x));
  const n = d.length;
  if (n === 0) return { mean: NaN, low: -Infinity, high: Infinity, pairs: 0 };
  const mean = d.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { mean, low: -Infinity, high: Infinity, pairs: n };
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  const half = (T_975[n - 2] ?? 1.96) * (sd / Math.sqrt(n));
  return { mean, low: mean - half, high: mean + half, pairs: n };
}

/** One case's differences from its two sides' rounds (round i of A pairs with round i of B). */
export function compare(call: string, a: AbSide, b: AbSide): AbCase {
  const of = (side: AbSide, f: (r: AbRound) => number) => side.rounds.map(f);
  const measured = [...a.rounds, ...b.rounds].every((r) => r.databaseCpuSeconds !== undefined);
  return {
    call,
    a,
    b,
    cpuUsPerCall: pairedDifference(of(a, cpuUsPerCall), of(b, cpuUsPerCall)),
    callsPerSecond: pairedDifference(of(a, callsPerSecond), of(b, callsPerSecond)),
    ...(measured && {
      databaseCpuUsPerCall: pairedDifference(
        of(a, databaseCpuUsPerCall),
        of(b, databaseCpuUsPerCall),
      ),
    }),
  };
}

export function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** What the interval says, in words: a difference is resolved only when it excludes zero. */
export function verdict(d: Difference, baseline: number, unit: string): string {
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${((x / baseline) * 100).toFixed(1)} %`;
  const num = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)}`;
  if (!Number.isFinite(d.low) || !Number.isFinite(d.high))
    return `${num(d.mean)} ${unit} (${pct(d.mean)}); too few rounds for an interval`;
  const range = `95 % interval ${num(d.low)} … ${num(d.high)} ${unit} (${pct(d.low)} … ${pct(d.high)})`;
  const resolved = d.low > 0 || d.high < 0;
  return `${num(d.mean)} ${unit} (${pct(d.mean)}), ${range}${resolved ? "" : ": not resolved from zero"}`;
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");

/** One call's block of the report: each side's figures, then B − A. */
export function renderCase(c: AbCase): string {
  const [a, b] = [c.a, c.b].map((side) => {
    const us = side.rounds.map(cpuUsPerCall);
    return {
      us,
      medianUs: median(us),
      medianDatabaseUs: median(side.rounds.map(databaseCpuUsPerCall)),
      medianRate: median(side.rounds.map(callsPerSecond)),
    };
  });
  const database = c.databaseCpuUsPerCall;
  const sideLine = (label: string, s: typeof a) =>
    `  ${label}  server CPU ${fmt(s.medianUs)} µs/call (rounds ${fmt(Math.min(...s.us))}–${fmt(Math.max(...s.us))}), ` +
    (database ? `database CPU ${fmt(s.medianDatabaseUs)} µs/call, ` : "") +
    `${Math.round(s.medianRate)} calls/s`;
  return [
    c.call,
    sideLine("A", a),
    sideLine("B", b),
    `  B − A  CPU: ${verdict(c.cpuUsPerCall, a.medianUs, "µs/call")}`,
    ...(database
      ? [`  B − A  database CPU: ${verdict(database, a.medianDatabaseUs, "µs/call")}`]
      : []),
    `  B − A  rate: ${verdict(c.callsPerSecond, a.medianRate, "calls/s")}`,
  ].join("\n");
}

/**
 * The whole report: what was compared and how, then one block per call.
 * `sides` names the builds when there are no cases yet to take them from.
 */
export function renderAb(
  r: AbResults,
  sides: readonly Pick<AbSide, "ref" | "commit">[] = r.cases[0] ? [r.cases[0].a, r.cases[0].b] : [],
): string {
  const name = (s: Pick<AbSide, "ref" | "commit"> | undefined) =>
    s ? `${s.ref} (${s.commit.replace(/^([0-9a-f]{12})[0-9a-f]*/, "$1")})` : "?";
  const head =
    `A = ${name(sides[0])}, B = ${name(sides[1])}: ${r.inFlight} in flight, ` +
    `${r.rounds} rounds of ${r.roundSeconds} s each side (ABBA order), store ${r.store}, host ${r.host}`;
  return [head, ...r.cases.map(renderCase)].join("\n\n");
}
