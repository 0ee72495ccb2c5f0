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
}

/** Starts a CPU accounting window; the returned function ends it. */
export function cpuWindow(pids: Pids): () => CpuShares {
  const t0 = performance.now();
  const m0 = machineCpu();
  const before = {
    server: cpuSeconds(pids.server),
    mariadb: cpuSeconds(pids.mariadb),
    nats: cpuSeconds(pids.nats),
    loadgen: cpuSeconds(pids.loadgen),
  };
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const m1 = machineCpu();
    const share = (pid: number | undefined, at: number) => {
      const d = (cpuSeconds(pid) - at) / wall;
      return Number.isFinite(d) ? round(d) : 0;
    };
    const s = {
      server: share(pids.server, before.server),
      mariadb: share(pids.mariadb, before.mariadb),
      nats: share(pids.nats, before.nats),
      loadgen: share(pids.loadgen, before.loadgen),
    };
    const machine = round((m1.busy - m0.busy) / wall);
    const ours = s.server + s.mariadb + s.nats + s.loadgen;
    return { ...s, other: round(Math.max(0, machine - ours)), machine };
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
