import type { RunResult } from "../worker.js";
import type { Dataset } from "./dataset.js";
import type { LatencySummary } from "./histogram.js";
import type { CaseDef } from "./plan.js";
import type { ServerLag } from "./relay.js";
import type { ResumeProbe } from "./resume-probe.js";
import type { SeedReport } from "./seed.js";

export type CaseResult = CaseDef &
  RunResult & {
    ratios: {
      /** To the raw baseline running the same SQL at the same concurrency. */
      sameSql?: number;
      /**
       * To the trivial RPC on the same door at the same concurrency: the one
       * run right before this case where the plan has one (NEIGHBOUR_REFERENCES).
       */
      trivialRpc?: number;
      /** To the raw two-INSERT transaction at the same concurrency (issue 7's write reference), likewise. */
      twoInsertTx?: number;
      /** Where a reference ran again next to this case: the ratios to the run's first ones. */
      trivialRpcAtStart?: number;
      twoInsertTxAtStart?: number;
    };
    /** Seconds the relay then needed to publish what this case wrote. */
    relayCatchUpSeconds?: number;
    /** The server's highest sampled RSS during the case (MB). */
    serverRssMb?: number;
  };

/**
 * A writing case's items per second until the relay had published all of
 * their events: the measured window plus the catch-up after it. A lower
 * bound, since the warm-up's events are published in the same time.
 */
export const publishedItemsPerSecond = (c: CaseResult): number =>
  c.items / (c.seconds + (c.relayCatchUpSeconds ?? 0));

export interface RelayLatencyResult {
  label: string;
  /** Offered events per second. */
  offeredEventsPerSecond: number;
  /** Events per second the service accepted. */
  achievedEventsPerSecond: number;
  calls: RunResult;
  /** created_at → delivered from the stream, per event. */
  streamLatency: LatencySummary;
  /** The server's own commit → ack histogram over the run. */
  serverLag: ServerLag;
}

export interface BacklogResult {
  events: number;
  /** How the backlog was written (while NATS was unreachable). */
  written: string;
  writeSeconds: number;
  /** First to last backlog message, by the stream's own timestamps. */
  drainSeconds: number;
  eventsPerSecond: number;
  /** From spawning the relaying server process to the last event stored. */
  fromServerStartSeconds: number;
  serverCpu?: number;
}

export interface MemoryResult {
  /** Highest VmRSS sampled (every 500 ms) of any server process of the run. */
  maxRssMb: number;
  /** Highest VmHWM (kernel's peak RSS) of any server process of the run. */
  peakRssMb: number;
  soak: {
    seconds: number;
    calls: RunResult;
    startMb: number;
    endMb: number;
    minMb: number;
    maxMb: number;
    /** Highest RSS of the soak's second half over the highest of its first half, minus 1. */
    growth: number;
    series: { s: number; mb: number }[];
  };
}

export interface TargetResult {
  id: string;
  text: string;
  measured: string;
  met: boolean;
}

export interface BenchResults {
  name: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  config: Record<string, unknown>;
  machine: Record<string, unknown>;
  /** What resuming after a sleep costs a Node.js thread on this machine (absent in older results). */
  resumeProbe?: ResumeProbe;
  load: Record<string, unknown>;
  dataset: Dataset & { deepCursorDepth: number; batchSize: number };
  seed: SeedReport;
  cases: CaseResult[];
  relay: { latency: RelayLatencyResult[]; backlog?: BacklogResult };
  memory: MemoryResult;
  targets: TargetResult[];
  /** Times a group ran out of fresh (group, membership) pairs and started over (see PairAllocator). */
  pairWraps: number;
  notes: string[];
}
