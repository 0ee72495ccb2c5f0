import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clampDeadlineHeaders, clampGrpcTimeout } from "../../server/src/rpc/deadline-headers.js";
import { RawH2 } from "../support/raw-h2.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * Deadlines longer than a Node timer holds (2^31 − 1 ms, ~24.8 days) are valid
 * on the wire; unclamped, grpc-js wrapped them to 32 bits and connect-node's
 * timer overflowed to 1 ms, so a months-long event tail ended at once
 * (server/src/rpc/deadline-headers.ts). Sent raw: the generated clients' own
 * timers overflow the same way.
 */
let t: TestServer;
const h2 = new RawH2();
const warnings: string[] = [];
const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);
const STREAM_EVENTS = "/groups.v1.EventsService/StreamEvents";
const LIST_ORGANIZATIONS = "/groups.v1.OrganizationsService/ListOrganizations";

beforeAll(async () => {
  t = await startTestServer();
  process.on("warning", onWarning);
});

afterAll(async () => {
  process.off("warning", onWarning);
  h2.close();
  await t?.close();
});

const auth = () => ({ authorization: `Bearer ${t.apiKey}` });
const ports = () => ({ GRPC_PORT: `http://${t.grpcAddress}`, PORT: t.httpUrl });

describe("clamping deadline headers", () => {
  it("keeps what a timer holds, clamps what it does not, and leaves malformed values to the protocol", () => {
    expect(clampGrpcTimeout("10S")).toBe("10S");
    expect(clampGrpcTimeout("2147483S")).toBe("2147483S");
    expect(clampGrpcTimeout("2147484S")).toBe("2147483S");
    expect(clampGrpcTimeout("99999999H")).toBe("2147483S");
    expect(clampGrpcTimeout("99999999n")).toBe("99999999n");
    expect(clampGrpcTimeout("1X")).toBe("1X");
    const headers = { "connect-timeout-ms": "9999999999", "grpc-timeout": "3000000S" };
    clampDeadlineHeaders(headers);
    expect(headers).toEqual({ "connect-timeout-ms": "2147483647", "grpc-timeout": "2147483S" });
    const fine = { "connect-timeout-ms": "250" };
    clampDeadlineHeaders(fine);
    expect(fine).toEqual({ "connect-timeout-ms": "250" });
  });
});

describe.each(["GRPC_PORT", "PORT"] as const)("gRPC on %s", (port) => {
  it.each(["3000000S", "99999999S", "99999999H"])(
    "an event tail with grpc-timeout %s stays open",
    async (timeout) => {
      const r = await h2.call(
        ports()[port],
        STREAM_EVENTS,
        { ...auth(), "grpc-timeout": timeout },
        EMPTY_MESSAGE,
      );
      expect(r).toMatchObject({ settled: false });
      expect(warnings).toEqual([]);
    },
  );

  it("an event tail with a short deadline still ends with DEADLINE_EXCEEDED", async () => {
    const r = await h2.call(
      ports()[port],
      STREAM_EVENTS,
      { ...auth(), "grpc-timeout": "100m" },
      EMPTY_MESSAGE,
    );
    expect(r, JSON.stringify(r)).toMatchObject({ settled: true, grpcStatus: "4" });
  });

  it("a unary call with a months-long deadline is served", async () => {
    const r = await h2.call(
      ports()[port],
      LIST_ORGANIZATIONS,
      { ...auth(), "grpc-timeout": "3000000S" },
      EMPTY_MESSAGE,
    );
    expect(r).toMatchObject({ settled: true, grpcStatus: "0" });
    expect(warnings).toEqual([]);
  });
});

describe("Connect on PORT, HTTP/1.1", () => {
  /** Opens a Connect event tail: what it ended with (its end-stream message), or "open" after 500 ms. */
  function tail(timeoutMs: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${t.httpUrl}${STREAM_EVENTS}`, {
        method: "POST",
        headers: {
          ...auth(),
          "content-type": "application/connect+proto",
          "connect-protocol-version": "1",
          "connect-timeout-ms": timeoutMs,
        },
      });
      const timer = setTimeout(() => {
        req.destroy();
        resolve("open");
      }, 500);
      req.on("response", (res) => {
        const body: Buffer[] = [];
        res.on("data", (chunk: Buffer) => body.push(chunk));
        res.on("end", () => {
          clearTimeout(timer);
          resolve(Buffer.concat(body).subarray(5).toString());
        });
      });
      req.on("error", (err) => (req.destroyed ? undefined : reject(err)));
      req.end(EMPTY_MESSAGE);
    });
  }

  it("an event tail with connect-timeout-ms 9999999999 stays open; one with 100 ends with deadline_exceeded", async () => {
    expect(await tail("9999999999")).toBe("open");
    expect(JSON.parse(await tail("100"))).toMatchObject({ error: { code: "deadline_exceeded" } });
    expect(warnings).toEqual([]);
  });
});
