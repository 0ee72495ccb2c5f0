import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../test/support/ports.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface BenchServer {
  pid: number;
  grpcPort: number;
  httpPort: number;
  /** Resolves when the process exits, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the process wrote to stderr (an uncaught error's stack lands there). */
  stderr(): string;
  /** Sends a signal to this process (by PID) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The service as its own process, started like test/support/process.ts's
 * quiet mode (compiled, `node dist/server/src/main.js`, or `tsx server/src/main.ts`; free ports picked here, ready when
 * /readyz answers, the per-call log lines on stdout to /dev/null as a
 * production deployment would ship them away), except that stderr goes to a
 * file: if the server dies mid-run, the benchmark can say why. `cwd` is the
 * checkout it runs from (another build's git worktree, for bench/ab.ts).
 */
export async function startBenchServer(
  env: Record<string, string>,
  how: "dist" | "tsx",
  cwd = root,
): Promise<BenchServer> {
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const errFile = path.join(mkdtempSync(path.join(tmpdir(), "groups-bench-")), "server.stderr");
  const errFd = openSync(errFile, "w");
  const main =
    how === "dist" ? ["dist/server/src/main.js"] : ["--import", "tsx", "server/src/main.ts"];
  const child = spawn(process.execPath, main, {
    cwd,
    env: {
      ...process.env,
      PORT: String(httpPort),
      GRPC_PORT: String(grpcPort),
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "ignore", errFd],
  });
  closeSync(errFd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const stderr = () => {
    try {
      return readFileSync(errFile, "utf8");
    } catch {
      return "";
    }
  };
  const deadline = Date.now() + 60_000;
  const ready = () =>
    fetch(`http://127.0.0.1:${httpPort}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
  while (!(await ready())) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}):\n${stderr()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server not ready after 60 s:\n${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    grpcPort,
    httpPort,
    exited,
    stderr,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      return exited;
    },
  };
}
