/**
 * How much a Node.js thread pays to resume after a sleep on this machine:
 * a grpc-js echo call at 1 in flight, back to back and with pauses between
 * calls, and the CPU each side's main thread spent per call. The work per
 * call is the same whatever the pause; what changes is that both threads
 * went to sleep in between. And the same calls at 16 in flight, back to
 * back: what a batch of calls taken in one wake costs per call. Run by
 * bench/lib/resume-probe.ts in processes of its own (this one is the
 * client; it forks the echo server), before the benchmark's cases start.
 *
 * Usage: node --import tsx bench/resume-probe.ts <seconds per setting> <in flight>:<pause ms>...
 * Prints one JSON line: ResumeProbe (bench/lib/resume-probe.ts).
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import type { ResumeProbe } from "./lib/resume-probe.js";

const bytes = (b: Buffer) => b;
const echo: grpc.ServiceDefinition = {
  echo: {
    path: "/bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
};

/** CPU milliseconds a process's main thread has run (the scheduler's own count). */
const mainThreadMs = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;

if (process.argv[2] === "serve") {
  const server = new grpc.Server();
  server.addService(echo, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done(null, call.request),
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send!({ port });
  });
  process.on("disconnect", () => process.exit(0));
} else {
  const seconds = Number(process.argv[2]);
  const settings = process.argv.slice(3).map((arg) => {
    const [inFlight, pauseMs] = arg.split(":").map(Number);
    return { inFlight, pauseMs };
  });
  const child = fork(fileURLToPath(import.meta.url), ["serve"], { execArgv: ["--import", "tsx"] });
  const port = await new Promise<number>((resolve) =>
    child.once("message", (m: { port: number }) => resolve(m.port)),
  );
  const Client = grpc.makeGenericClientConstructor(echo, "Echo");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const payload = Buffer.from("resume-probe");
  const call = () =>
    new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest("/bench.Echo/Echo", bytes, bytes, payload, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  // Warm up: connection, JIT.
  for (let i = 0; i < 2000; i++) await call();
  const result: ResumeProbe = { seconds, settings: [] };
  for (const { inFlight, pauseMs } of settings) {
    const client0 = mainThreadMs(process.pid);
    const server0 = mainThreadMs(child.pid!);
    const end = performance.now() + seconds * 1000;
    let calls = 0;
    const caller = async () => {
      while (performance.now() < end) {
        await call();
        calls++;
        if (pauseMs > 0) await pause(pauseMs);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, caller));
    result.settings.push({
      inFlight,
      pauseMs,
      calls,
      clientMsPerCall: (mainThreadMs(process.pid) - client0) / calls,
      serverMsPerCall: (mainThreadMs(child.pid!) - server0) / calls,
    });
  }
  client.close();
  child.disconnect();
  console.log(JSON.stringify(result));
}
