import { readdirSync, readFileSync } from "node:fs";

/**
 * Linux /proc readings: CPU time of the processes involved (to see which one
 * saturates the two cores) and the server's resident memory.
 */
const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux x86_64

export interface Pids {
  server?: number;
  mariadb?: number;
  nats?: number;
  loadgen?: number;
}

/** CPU seconds a process has used (user + system), or NaN if it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds a process's threads have run, to the nanosecond (the
 * scheduler's own count, /proc/PID/task/TID/schedstat), or NaN if it is gone.
 * cpuSeconds counts in 10 ms ticks, too coarse for a round of a second or
 * two; this one loses the time of a thread that exited meanwhile, which a
 * Node.js process's long-lived threads do not.
 */
export function threadCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread exited meanwhile
      }
    }
  } catch {
    return NaN;
  }
  return ns / 1e9;
}

/**
 * How many times each of a process's threads has gone to sleep so far
 * (voluntary context switches, /proc/PID/task/TID/status), by thread id, or
 * undefined if the process is gone. On these virtual machines a Node.js
 * thread pays for each sleep in CPU on its next call (BENCHMARKS.md,
 * "Resuming after a sleep").
 */
export function threadSleeps(pid: number | undefined): Map<string, number> | undefined {
  if (!pid) return undefined;
  const counts = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
        counts.set(tid, Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0));
      } catch {
        // the thread exited meanwhile
      }
    }
  } catch {
    return undefined;
  }
  return counts;
}

/**
 * Sleeps between two readings of threadSleeps: every thread alive at the
 * second, counted from the first reading or, if it started since, from zero.
 * A thread that exited in between takes its sleeps with it (the kernel keeps
 * no per-process total), so this can undercount, never go negative.
 */
export function sleepsBetween(
  before: Map<string, number> | undefined,
  after: Map<string, number> | undefined,
): number {
  if (!before || !after) return NaN;
  let sum = 0;
  for (const [tid, n] of after) {
    const from = before.get(tid) ?? 0;
    // A lower count is a new thread under a reused id.
    sum += n >= from ? n - from : n;
  }
  return sum;
}

/** Busy and total CPU seconds of the whole machine (all cores). */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** VmRSS and VmHWM (peak) of a process, in MB. */
export function memoryMb(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    const rss = kb("VmRSS") / 1024;
    const peak = kb("VmHWM") / 1024;
    // An exited, not yet reaped process (zombie) has no memory lines.
    return Number.isFinite(rss) && Number.isFinite(peak) ? { rss, peak } : undefined;
  } catch {
    return undefined;
  }
}

/** PID of the first process whose command name is `comm` and whose command line contains `needle`. */
export function findPid(comm: string, needle = ""): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== comm) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(needle)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

export interface CpuShares {
  /** Cores used on average during the window (1 = one core fully busy). */
  server: number;
  mariadb: number;
  nats: number;
  loadgen: number;
  /** Everything else on the machine (other test runs, the orchestrator, …). */
  other: number;
  /** Whole machine busy, in cores. */
  machine: number;
  /** Times per second each process's threads went to sleep (see threadSleeps); absent in older results. */
  sleeps?: ProcessRates;
}

type Role = keyof Pids;

/** A per-second figure for each process of Pids. */
export type ProcessRates = Record<Role, number>;

/** One figure per process. */
const byRole = <T>(f: (role: Role) => T): Record<Role, T> => ({
  server: f("server"),
  mariadb: f("mariadb"),
  nats: f("nats"),
  loadgen: f("loadgen"),
});

/** One reading per process of `read` (CPU seconds, sleeps by thread). */
const readAll = <T>(pids: Pids, read: (pid: number | undefined) => T) =>
  byRole((role) => read(pids[role]));

/** Starts a CPU accounting window; the returned function ends it. */
export function cpuWindow(pids: Pids): () => CpuShares {
  // Reading every thread's status costs the load generator CPU: done before
  // the window's clock and CPU readings start and after they end, it stays
  // out of them.
  const sleeps0 = readAll(pids, threadSleeps);
  const t0 = performance.now();
  const m0 = machineCpu();
  const cpu0 = readAll(pids, cpuSeconds);
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const m1 = machineCpu();
    // Per second over the window; 0 for a process that is not there.
    const perSecond = (delta: (role: Role) => number, digits: number) =>
      byRole((role) => {
        const d = delta(role) / wall;
        return Number.isFinite(d) ? roundTo(d, digits) : 0;
      });
    const cpu1 = readAll(pids, cpuSeconds);
    const sleeps1 = readAll(pids, threadSleeps);
    const s = perSecond((role) => cpu1[role] - cpu0[role], 2);
    const sleeps = perSecond((role) => sleepsBetween(sleeps0[role], sleeps1[role]), 0);
    const machine = round((m1.busy - m0.busy) / wall);
    const ours = s.server + s.mariadb + s.nats + s.loadgen;
    return { ...s, other: round(Math.max(0, machine - ours)), machine, sleeps };
  };
}

const roundTo = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const round = (x: number) => roundTo(x, 2);
