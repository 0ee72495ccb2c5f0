import { DeliverPolicy, type NatsConnection } from "nats";
import { Histogram, type LatencySummary } from "./histogram.js";

/**
 * Event latency as a consumer sees it: an ordered JetStream consumer on the
 * service's stream (headers only) compares each event's `ce-time` (the
 * event's created_at, set inside the writing transaction just before its
 * commit) with the time the message arrives from the stream. So it is commit
 * → stored in JetStream → delivered, an upper bound of commit → ack.
 */
export class StreamLatencyProbe {
  private readonly hist = new Histogram();
  private window: { from: number; to: number } = { from: Infinity, to: -Infinity };
  private seen = 0;
  private stopFn: (() => void) | undefined;
  private done: Promise<void> | undefined;

  static async start(nc: NatsConnection, stream: string): Promise<StreamLatencyProbe> {
    const p = new StreamLatencyProbe();
    const consumer = await nc
      .jetstream()
      .consumers.get(stream, { deliver_policy: DeliverPolicy.New, headers_only: true });
    const messages = await consumer.consume({ max_messages: 1000 });
    p.stopFn = () => void messages.stop();
    p.done = (async () => {
      for await (const m of messages) {
        const now = Date.now();
        const created = Date.parse(m.headers?.get("ce-time") ?? "");
        p.seen++;
        if (created >= p.window.from && created <= p.window.to) p.hist.record(now - created);
      }
    })();
    return p;
  }

  /** Only events created within [from, to] (epoch ms) are measured. */
  measureBetween(from: number, to: number): void {
    this.window = { from, to };
  }

  get received(): number {
    return this.seen;
  }

  get measured(): number {
    return this.hist.count;
  }

  async stop(): Promise<LatencySummary> {
    this.stopFn?.();
    await this.done;
    return this.hist.summary();
  }
}

/** The service's own commit → JetStream-ack histogram (groups_relay_lag_seconds) from /metrics. */
export async function scrapeRelayLag(httpUrl: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(/^groups_relay_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
    buckets.set(m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

export interface ServerLag {
  events: number;
  /** Share of events acked within 50 ms of commit. */
  within50ms: number;
  /** Upper bounds of the buckets holding the median and the 99th percentile (ms). */
  p50AtMostMs: number;
  p99AtMostMs: number;
}

/** What happened between two scrapes of the cumulative histogram. */
export function lagBetween(before: Map<number, number>, after: Map<number, number>): ServerLag {
  const les = [...after.keys()].sort((a, b) => a - b);
  const cum = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = cum.at(-1) ?? 0;
  const at = (q: number) => {
    const i = cum.findIndex((c) => c >= q * total);
    return i < 0 ? Infinity : les[i] * 1000;
  };
  const i50 = les.indexOf(0.05);
  return {
    events: total,
    within50ms: total ? Math.round((cum[i50] / total) * 10000) / 10000 : 0,
    p50AtMostMs: total ? at(0.5) : 0,
    p99AtMostMs: total ? at(0.99) : 0,
  };
}
