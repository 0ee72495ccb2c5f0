import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../server/src/ops/logger.js";

describe("createLogger", () => {
  it("never writes an authorization header, wherever a line carries one", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger("info", sink);
    const secret = "Bearer gsk_secret_value";
    log.info({ authorization: secret }, "top level");
    log.info({ headers: { authorization: secret, "x-request-id": "r1" } }, "headers");
    log.info({ metadata: { authorization: secret } }, "metadata");
    log.info({ requestId: "r2", code: "ok" }, "plain");

    expect(lines).toHaveLength(4);
    expect(lines.join("")).not.toContain("gsk_secret_value");
    expect(JSON.parse(lines[0])).toMatchObject({ authorization: "[redacted]" });
    expect(JSON.parse(lines[1])).toMatchObject({
      headers: { authorization: "[redacted]", "x-request-id": "r1" },
    });
    expect(JSON.parse(lines[2])).toMatchObject({ metadata: { authorization: "[redacted]" } });
    expect(JSON.parse(lines[3])).toMatchObject({ requestId: "r2", code: "ok", msg: "plain" });
  });
});
