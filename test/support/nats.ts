import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { freePort, waitForPort } from "./ports.js";
import { decodeEvent } from "../../clients/src/events/subscriber.js";
import type { Event } from "../../clients/src/gen/groups/v1/events_pb.js";

/** The NATS server this machine runs (JetStream enabled). */
export const SHARED_NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A stream name and subject prefix no other test run uses. */
export function uniqueStream(): { stream: string; subjectPrefix: string } {
  const id = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  return { stream: `TEST_${id.toUpperCase()}`, subjectPrefix: `t${id}.v1` };
}

export interface NatsProcess {
  url: string;
  port: number;
  pid(): number | undefined;
  /** SIGKILL this process (by PID) and wait for it to exit. */
  kill(): Promise<void>;
  /** Start it again on the same port and store directory. */
  restart(): Promise<void>;
  /** Stop it and remove its store. */
  stop(): Promise<void>;
}

/**
 * A nats-server with JetStream owned by one test: its own port and store
 * directory, so killing it touches nothing else.
 */
export async function startNatsProcess(): Promise<NatsProcess> {
  const port = await freePort();
  const storeDir = mkdtempSync(path.join(tmpdir(), "groups-nats-"));
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
      stdio: "ignore",
    });
    await waitForPort(port);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

export interface StoredEvent {
  seq: number;
  subject: string;
  headers: Record<string, string>;
  event: Event;
}

/** Every message the stream holds, in stream order, decoded. */
export async function storedEvents(nc: NatsConnection, stream: string): Promise<StoredEvent[]> {
  const jsm: JetStreamManager = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream);
  const out: StoredEvent[] = [];
  for (
    let seq = info.state.first_seq;
    seq <= info.state.last_seq && info.state.messages > 0;
    seq++
  ) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (!m) continue;
    const headers: Record<string, string> = {};
    for (const k of m.header?.keys() ?? []) headers[k] = m.header.get(k);
    out.push({
      seq,
      subject: m.subject,
      headers,
      event: decodeEvent(m.data, headers["Content-Type"]),
    });
  }
  return out;
}

export async function connectNats(url = SHARED_NATS_URL): Promise<NatsConnection> {
  return connect({ servers: url });
}

/** Deletes a test stream (ignores "not found"). */
export async function deleteStream(nc: NatsConnection, stream: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.delete(stream).catch(() => undefined);
}
