/**
 * Settings of one benchmark run, from the environment (and `--smoke`):
 *
 *   BENCH_SCALE          data size relative to issue 7's (1 = 100,000 memberships, 1,000 groups,
 *                        a 1,000,000-member group)                               default 1, smoke 0.02
 *   BENCH_SECONDS        measured seconds per case                              default 5, smoke 0.5
 *   BENCH_WARMUP_SECONDS unmeasured seconds before each case                    default 1, smoke 0.2
 *   BENCH_CONCURRENCY    in-flight levels, comma-separated (16 always runs)     default 1,16,64, smoke 16
 *   BENCH_SOAK_SECONDS   memory soak under mixed load                           default 60, smoke 2
 *   BENCH_RELAY_SECONDS  relay latency run at a fixed offered rate             default 10, smoke 1
 *   BENCH_RELAY_RATE     offered writes per second in that run                  default 1000
 *   BENCH_BACKLOG_EVENTS events written while NATS is unreachable, then drained default 100000, smoke 1000
 *   BENCH_ONLY           comma-separated substrings: run only matching cases (debugging)
 *   BENCH_NAME           results name: bench/results/<name>.json            default bench, smoke "smoke",
 *                        a trial run "trial" (the smoke and an unnamed trial run write
 *                        bench/results/<name>.tmp, git-ignored)
 *   BENCH_OUT            results file path (overrides BENCH_NAME's)
 *   BENCH_MARKDOWN       1/0: rewrite the results section of BENCHMARKS.md   default 1 for "bench", else 0
 *   BENCH_GRPC_CLIENT    grpc-js (default) or connect: the load generator's gRPC client
 *   BENCH_SERVER         dist: compile (npm run build) and run node dist/server/src/main.js, as
 *                        production does; tsx: run the TypeScript under tsx, as the tests do
 *                                                                            default dist, smoke tsx
 *   BENCH_DATABASE_SOCKET MariaDB's Unix socket path: the service (DATABASE_URL ?socket=) and
 *                        every raw mysql2 baseline connect through it instead of TCP
 *                        (empty: TCP to 127.0.0.1:3306)                      default empty
 *   BENCH_SERVER_CPU_PROF a directory: profile the server process (a .cpuprofile per server
 *                        process, written at its exit; see bench/lib/cpu-profile.cjs)
 *
 * A trial run is one given any setting above but those that name or place its
 * results (see LABELS): cut down, profiled or otherwise varied, its figures
 * are not the suite's, so unless named it must not overwrite the suite's
 * results or BENCHMARKS.md. New settings count without being listed.
 */
export interface BenchConfig {
  name: string;
  smoke: boolean;
  scale: number;
  seconds: number;
  warmupSeconds: number;
  concurrency: number[];
  soakSeconds: number;
  relaySeconds: number;
  relayRate: number;
  backlogEvents: number;
  only: string[];
  out: string;
  markdown: boolean;
  grpcClient: "connect" | "grpc-js";
  /** How the server runs: compiled (as deployed) or under tsx (as in the tests). */
  server: "dist" | "tsx";
  serverCpuProfDir?: string;
  /** Service and raw baselines reach MariaDB over this Unix socket (undefined: TCP). */
  databaseSocket?: string;
  /** NODE_OPTIONS of the server process: its memory budget, as a deployment sets it (README). */
  serverNodeOptions: string;
  /** Longest wait for the relay to publish what a case wrote before the next case starts. */
  drainTimeoutSeconds: number;
}

function num(name: string, fallback: number, env: NodeJS.ProcessEnv): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return v;
}

/** Settings that name, place or label a run's results without changing its figures. */
const LABELS = new Set([
  "BENCH_NAME",
  "BENCH_OUT",
  "BENCH_MARKDOWN",
  "BENCH_GIT_COMMIT",
  "BENCH_DRAIN_TIMEOUT_SECONDS",
]);

/** Whether `env` varies the suite (see "A trial run" above). */
const isTrial = (env: NodeJS.ProcessEnv) =>
  Object.keys(env).some((key) => key.startsWith("BENCH_") && !LABELS.has(key));

export function loadBenchConfig(
  argv: string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): BenchConfig {
  const smoke = argv.includes("--smoke");
  const named = env.BENCH_NAME?.trim();
  const trial = !smoke && !named && isTrial(env);
  const name = named || (smoke ? "smoke" : trial ? "trial" : "bench");
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`BENCH_NAME: letters, digits, _ . - only`);
  const concurrency = (env.BENCH_CONCURRENCY ?? (smoke ? "16" : "1,16,64"))
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  if (!concurrency.includes(16)) concurrency.push(16); // the targets and the Connect subset are at 16
  concurrency.sort((a, b) => a - b);
  const client = env.BENCH_GRPC_CLIENT ?? "grpc-js";
  if (client !== "connect" && client !== "grpc-js")
    throw new Error(`BENCH_GRPC_CLIENT must be connect or grpc-js`);
  const server = env.BENCH_SERVER?.trim() || (smoke ? "tsx" : "dist");
  if (server !== "dist" && server !== "tsx") throw new Error(`BENCH_SERVER must be dist or tsx`);
  return {
    name,
    smoke,
    server,
    scale: num("BENCH_SCALE", smoke ? 0.02 : 1, env),
    seconds: num("BENCH_SECONDS", smoke ? 0.5 : 5, env),
    warmupSeconds:
      env.BENCH_WARMUP_SECONDS === "0" ? 0 : num("BENCH_WARMUP_SECONDS", smoke ? 0.2 : 1, env),
    concurrency: [...new Set(concurrency)],
    soakSeconds: num("BENCH_SOAK_SECONDS", smoke ? 2 : 60, env),
    relaySeconds: num("BENCH_RELAY_SECONDS", smoke ? 1 : 10, env),
    relayRate: num("BENCH_RELAY_RATE", 1000, env),
    backlogEvents: Math.round(num("BENCH_BACKLOG_EVENTS", smoke ? 1000 : 100_000, env)),
    only: (env.BENCH_ONLY ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    // The smoke's and an unnamed trial's figures are throwaway: *.tmp is git-ignored.
    out: env.BENCH_OUT?.trim() || `bench/results/${name}${smoke || trial ? ".tmp" : ".json"}`,
    markdown: env.BENCH_MARKDOWN ? env.BENCH_MARKDOWN === "1" : name === "bench" && !smoke,
    grpcClient: client,
    serverCpuProfDir: env.BENCH_SERVER_CPU_PROF?.trim() || undefined,
    databaseSocket: env.BENCH_DATABASE_SOCKET?.trim() || undefined,
    serverNodeOptions: env.BENCH_SERVER_NODE_OPTIONS ?? "--max-old-space-size=160",
    drainTimeoutSeconds: num("BENCH_DRAIN_TIMEOUT_SECONDS", smoke ? 20 : 240, env),
  };
}
