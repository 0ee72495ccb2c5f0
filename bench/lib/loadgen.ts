import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { RunResult, RunSpec, WorkerRequest } from "../worker.js";
import type { WorkerInit } from "./ops.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The load-generator process (bench/worker.ts) and a typed request/response channel to it. */
export class LoadGenerator {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  private constructor(private readonly child: ChildProcess) {
    child.on("message", (msg: { id: number; ok: boolean; value?: unknown; error?: string }) => {
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.ok) w?.resolve(msg.value);
      else w?.reject(new Error(`load generator: ${msg.error}`));
    });
    child.once("exit", (code, signal) => {
      for (const w of this.waiting.values())
        w.reject(new Error(`load generator exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static async start(init: WorkerInit): Promise<LoadGenerator> {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/worker.ts"], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    const lg = new LoadGenerator(child);
    await lg.request({ type: "init", init });
    return lg;
  }

  get pid(): number {
    return this.child.pid!;
  }

  private request<T>(req: WorkerRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.gone) return reject(new Error("load generator exited"));
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, req });
    });
  }

  run(spec: RunSpec): Promise<RunResult> {
    return this.request({ type: "run", spec });
  }

  retarget(grpcUrl: string, httpUrl: string): Promise<void> {
    return this.request({ type: "retarget", grpcUrl, httpUrl });
  }

  info(): Promise<{ natsVersion: string; pairWraps: number }> {
    return this.request({ type: "info" });
  }

  /** Exited, or killed by a signal (then exitCode stays null). */
  private get gone(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async close(): Promise<void> {
    if (this.gone) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    await this.request({ type: "close" }).catch(() => undefined);
    this.child.disconnect();
    await exited;
  }

  /** Ends the process at once, a case in flight or not (the run was interrupted). */
  async kill(): Promise<void> {
    if (this.gone) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await exited;
  }
}
