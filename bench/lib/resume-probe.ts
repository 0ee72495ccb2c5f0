import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** bench/resume-probe.ts's answer: main-thread CPU per echo call, by pause between calls. */
export interface ResumeProbe {
  /** Measured seconds per setting. */
  seconds: number;
  settings: {
    /** Calls in flight (absent in results before it was probed: 1). */
    inFlight?: number;
    /** Pause between one call's answer and the next call (0: back to back). */
    pauseMs: number;
    calls: number;
    /** The grpc-js client's main thread, ms of CPU per call. */
    clientMsPerCall: number;
    /** The grpc-js echo server's main thread, likewise. */
    serverMsPerCall: number;
  }[];
}

/**
 * The settings probed. At 1 in flight: no pause, about one timer tick, a few
 * milliseconds, and about one round of 16 adds in lock step. Then 16 in
 * flight back to back, the benchmark's own concurrency: what one wake's
 * batch of calls costs per call on this host (two hosts alike at 1 in
 * flight ran the trivial call at 16 in flight 2× apart, BENCHMARKS.md).
 */
export const RESUME_SETTINGS: readonly { inFlight: number; pauseMs: number }[] = [
  { inFlight: 1, pauseMs: 0 },
  { inFlight: 1, pauseMs: 1 },
  { inFlight: 1, pauseMs: 4 },
  { inFlight: 1, pauseMs: 16 },
  { inFlight: 16, pauseMs: 0 },
];

/** The probe's figures in one line: "back to back 0.34 / 0.26 ms; 1 ms apart …; 16 in flight …" (client / server). */
export const describeResumeProbe = (probe: ResumeProbe): string =>
  probe.settings
    .map(
      (s) =>
        `${settingName(s)} ${s.clientMsPerCall.toFixed(2)} / ${s.serverMsPerCall.toFixed(2)} ms`,
    )
    .join("; ");

function settingName(s: ResumeProbe["settings"][number]): string {
  if ((s.inFlight ?? 1) > 1) return `${s.inFlight} in flight`;
  return s.pauseMs === 0 ? "back to back" : `${s.pauseMs} ms apart`;
}

/** Runs the probe in processes of its own and returns what it measured. */
export function runResumeProbe(secondsPerSetting: number): Promise<ResumeProbe> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/resume-probe.ts",
        String(secondsPerSetting),
        ...RESUME_SETTINGS.map((s) => `${s.inFlight}:${s.pauseMs}`),
      ],
      { cwd: root, env: { ...process.env, NODE_OPTIONS: "" }, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`resume probe failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as ResumeProbe);
      },
    );
  });
}
