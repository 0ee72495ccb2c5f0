import { headers } from "nats";
import { describe, expect, it } from "vitest";
import { NoStreamError, readAck } from "../../server/src/events/jetstream-acks.js";

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe("readAck: what a JetStream publish reply means", () => {
  it("an ack: the stream and its sequence; duplicate only when JetStream says so", () => {
    expect(readAck(json({ stream: "S", seq: 7 }))).toEqual({
      stream: "S",
      seq: 7,
      duplicate: false,
    });
    expect(readAck(json({ stream: "S", seq: 7, duplicate: true }))).toEqual({
      stream: "S",
      seq: 7,
      duplicate: true,
    });
  });

  it("a refusal: an error carrying JetStream's description and code", () => {
    const out = readAck(
      json({
        error: { code: 400, err_code: 10071, description: "wrong last msg ID: event_01" },
      }),
    );
    expect(out).toBeInstanceOf(Error);
    expect((out as Error).message).toBe(
      "JetStream refused the message: wrong last msg ID: event_01 (10071)",
    );
  });

  it("a 503 status without a body: no stream listens (NoStreamError)", () => {
    expect(readAck(new Uint8Array(), headers(503, "No Responders"))).toBeInstanceOf(NoStreamError);
  });

  it("other statuses and unreadable bodies are errors, never acks", () => {
    const status = readAck(new Uint8Array(), headers(408, "Request Timeout"));
    expect(status).toBeInstanceOf(Error);
    expect(status).not.toBeInstanceOf(NoStreamError);
    expect((status as Error).message).toContain("408");
    expect(readAck(new TextEncoder().encode("not json"))).toBeInstanceOf(Error);
    expect(readAck(json({ seq: 1 }))).toBeInstanceOf(Error);
    expect(readAck(json({ stream: "S" }))).toBeInstanceOf(Error);
  });
});
