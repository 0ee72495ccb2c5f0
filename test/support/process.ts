import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface ServerProcess {
  pid: number;
  grpcPort: number;
  httpPort: number;
  /** Log lines (pino JSON) seen so far. */
  logs: string[];
  /** Sends a signal to this process (by PID) and waits for it to exit; resolves its exit code/signal. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the process exits by itself. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The real service as a separate process (`tsx server/src/main.ts`), for tests
 * that crash, kill or run several replicas. Ports are picked by the OS and
 * read from the "listening" log line. With `quiet` (benchmarks) the logs go
 * to /dev/null instead of through this process, the ports are picked here and
 * readiness is read from /readyz.
 */
export async function startServerProcess(
  env: Record<string, string>,
  opts: { quiet?: boolean } = {},
): Promise<ServerProcess> {
  const chosen = opts.quiet
    ? { httpPort: await freePort(), grpcPort: await freePort() }
    : undefined;
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "server/src/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(chosen?.httpPort ?? 0),
      GRPC_PORT: String(chosen?.grpcPort ?? 0),
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: opts.quiet ? "ignore" : ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ports = await new Promise<{ grpcPort: number; httpPort: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start:\n${logs.join("\n")}`)),
      30_000,
    );
    const started = (p: { grpcPort: number; httpPort: number }) => {
      clearTimeout(timer);
      resolve(p);
    };
    if (chosen) {
      void (async () => {
        const ready = () =>
          fetch(`http://127.0.0.1:${chosen.httpPort}/readyz`).then(
            (r) => r.ok,
            () => false,
          );
        while (child.exitCode === null && !(await ready()))
          await new Promise((r) => setTimeout(r, 100));
        if (child.exitCode === null) started(chosen);
      })();
    }
    for (const stream of chosen ? [] : [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        logs.push(line);
        if (line.includes('"groups service listening"')) {
          started(JSON.parse(line) as { grpcPort: number; httpPort: number });
        }
      });
    }
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${logs.join("\n")}`));
    });
  });
  return {
    pid: child.pid!,
    ...ports,
    logs,
    exited,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
      return exited;
    },
  };
}
