import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

/** What a browser sees: CORS only for configured origins, Connect calls need their protocol header. */
const ALLOWED = "https://admin.example.com";
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer({ CORS_ALLOWED_ORIGINS: `${ALLOWED}, https://other.example.com` });
});

afterAll(async () => {
  await t?.close();
});

const url = () => `${t.httpUrl}/groups.v1.OrganizationsService/ListOrganizations`;

function preflight(origin: string) {
  return fetch(url(), {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version,authorization",
    },
  });
}

describe("CORS", () => {
  it("answers a preflight from an allowed origin with the Connect headers", async () => {
    const res = await preflight(ALLOWED);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "authorization", "x-grpc-web"]) {
      expect(allowed).toContain(h);
    }
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("gives a foreign origin no CORS headers, so the browser refuses the call", async () => {
    const res = await preflight("https://evil.example.net");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const call = await fetch(url(), {
      method: "POST",
      headers: {
        origin: "https://evil.example.net",
        "content-type": "application/json",
        "connect-protocol-version": "1",
        authorization: `Bearer ${t.apiKey}`,
      },
      body: "{}",
    });
    expect(call.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("exposes response headers to the allowed origin on real calls", async () => {
    const res = await fetch(url(), {
      method: "POST",
      headers: {
        origin: ALLOWED,
        "content-type": "application/json",
        "connect-protocol-version": "1",
        authorization: `Bearer ${t.apiKey}`,
      },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(res.headers.get("access-control-expose-headers")).toMatch(/grpc-status/i);
  });
});

describe("Connect protocol header", () => {
  it("is required, so a plain form or JSON post is not taken for a call", async () => {
    const res = await fetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.apiKey}` },
      body: "{}",
    });
    expect(res.status).toBe(400);
  });
});
