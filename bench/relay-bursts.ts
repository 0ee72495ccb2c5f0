/**
 * `npx tsx bench/relay-bursts.ts`: how long a write's event takes to reach
 * NATS when writes come in quick pairs (a client's second call right after
 * its first), the pattern in which a commit lands while the relay's round for
 * the one before is under way. Each pair's first event is the baseline of the
 * same run: the relay was idle and woken by its commit.
 *
 * Real MariaDB and NATS, the server in this process with the default relay
 * settings (RELAY_POLL_INTERVAL_MS 250); latency is from the call's answer to
 * the event's arrival on a core NATS subscription. PAIRS (default 100) pairs,
 * 100 ms apart. Writes bench/results/relay-bursts.json.
 */
import { writeFileSync } from "node:fs";
import { connect } from "nats";
import { decodeEvent } from "../clients/src/events/subscriber.js";
import { deleteStream, SHARED_NATS_URL, uniqueStream } from "../test/support/nats.js";
import { startTestServer } from "../test/support/server.js";
import { sleep } from "../test/support/wait.js";
import { Histogram } from "./lib/histogram.js";

const pairs = Number(process.env.PAIRS ?? 100);
const { stream, subjectPrefix } = uniqueStream();
const t = await startTestServer({
  NATS_URL: SHARED_NATS_URL,
  NATS_STREAM: stream,
  NATS_SUBJECT_PREFIX: subjectPrefix,
});
const nc = await connect({ servers: SHARED_NATS_URL });
/** Group id → [when its CreateGroup answered, which write of its pair]. */
const answered = new Map<string, [number, 0 | 1]>();
/** Per write of a pair: its events' latencies, and how many took over 100 ms. */
const latency = [0, 1].map(() => ({ histogram: new Histogram(), over100Ms: 0 }));
const subscription = nc.subscribe(`${subjectPrefix}.>`);
void (async () => {
  for await (const m of subscription) {
    const event = decodeEvent(m.data, m.headers?.get("Content-Type"));
    const write =
      event.data.case === "group" ? answered.get(event.data.value.group!.id) : undefined;
    if (!write) continue;
    const ms = performance.now() - write[0];
    latency[write[1]].histogram.record(ms);
    if (ms > 100) latency[write[1]].over100Ms++;
  }
})();

const { groups, orgs } = t.clients("grpc");
const organizationId = (await orgs.createOrganization({ name: "Relay bursts" })).organization!.id;
await sleep(500);
for (let i = 0; i < pairs; i++) {
  for (const k of [0, 1] as const) {
    const { group } = await groups.createGroup({ organizationId, name: `Pair ${i} ${k}` });
    answered.set(group!.id, [performance.now(), k]);
  }
  await sleep(100);
}
await sleep(1000);

const [first, second] = latency.map((l) => ({
  ...l.histogram.summary(),
  over100Ms: l.over100Ms,
}));
const results = { pairs, first, second };
for (const k of ["first", "second"] as const) {
  const r = results[k];
  console.log(
    `${k} of each pair: ${r.count}/${pairs} events, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ${r.over100Ms} over 100 ms`,
  );
}
writeFileSync(
  new URL("results/relay-bursts.json", import.meta.url),
  JSON.stringify(results, null, 2) + "\n",
);
subscription.unsubscribe();
await deleteStream(nc, stream);
await nc.close();
await t.close();
