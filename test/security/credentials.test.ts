/**
 * Credentials (SPEC §6, issue 4 items 1, 2, 6 and 7): every bad access token
 * and every bad API key is UNAUTHENTICATED; a token without org_id is
 * PERMISSION_DENIED; the permissions claim and read-only keys separate reads
 * from writes; revoked keys stop working (revoked in-process and by the
 * `npm run keys` CLI in another process, within API_KEY_CACHE_MS); no secret
 * is stored in the database; the CLI prints a secret once and never lists
 * one. Every check runs on every front door.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { exportPKCS8, importPKCS8, SignJWT } from "jose";
import type { RowDataPacket } from "mysql2/promise";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { expectError } from "../support/assertions.js";
import { newSigningKey, nowSeconds, startJwksServer, type JwksServer } from "../support/jwks.js";
import { DOORS, startTestServer, type Door, type TestServer } from "../support/server.js";
import { until } from "../support/wait.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const API_KEY_CACHE_MS = 1000;

let t: TestServer;
let jwks: JwksServer;
let orgA: string;
let orgB: string;
/** Every secret this file created: none may be stored or listed. */
const secrets: string[] = [];

beforeAll(async () => {
  jwks = await startJwksServer();
  t = await startTestServer({ ...jwks.env, API_KEY_CACHE_MS: String(API_KEY_CACHE_MS) });
  const admin = t.clients("grpc");
  orgA = (await admin.orgs.createOrganization({ name: "Credentials A" })).organization!.id;
  orgB = (await admin.orgs.createOrganization({ name: "Credentials B" })).organization!.id;
});

afterAll(async () => {
  await t?.close();
  await jwks?.close();
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Clients sending `authorization` verbatim (null: no header at all). */
function clientsWith(door: Door, authorization: string | null) {
  const auth: Interceptor = (next) => (req) => {
    if (authorization !== null) req.header.set("authorization", authorization);
    return next(req);
  };
  const interceptors = [auth];
  const transport =
    door === "grpc"
      ? createGrpcTransport({ baseUrl: `http://${t.grpcAddress}`, interceptors })
      : door === "connect"
        ? createConnectTransport({ baseUrl: t.httpUrl, httpVersion: "1.1", interceptors })
        : createGrpcWebTransport({ baseUrl: t.httpUrl, httpVersion: "1.1", interceptors });
  return {
    orgs: createClient(OrganizationsService, transport),
    groups: createClient(GroupsService, transport),
  };
}
const bearer = (door: Door, token: string) => clientsWith(door, `Bearer ${token}`);

const read = (c: ReturnType<typeof bearer>, organizationId = orgA) =>
  c.orgs.getOrganization({ organizationId });
const write = (c: ReturnType<typeof bearer>, organizationId = orgA) =>
  c.groups.createGroup({ organizationId, name: `g ${randomBytes(3).toString("hex")}` });

/** The token is refused as a credential: UNAUTHENTICATED for a read and for a write. */
async function expectUnauthenticated(door: Door, authorization: string | null): Promise<void> {
  const c = clientsWith(door, authorization);
  await expectError(read(c), Code.Unauthenticated);
  await expectError(write(c), Code.Unauthenticated);
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** A token's parts with one replaced. */
function withPart(token: string, index: 0 | 1 | 2, part: string): string {
  const parts = token.split(".");
  parts[index] = part;
  return parts.join(".");
}

/** Flips one character in the middle of a base64url part (middle: never only padding bits). */
function flipped(part: string): string {
  const i = Math.floor(part.length / 2);
  return part.slice(0, i) + (part[i] === "A" ? "B" : "A") + part.slice(i + 1);
}

/** A key's id and secret part: `gsk_<ulid>_<secret>` (the secret part may itself hold "_"). */
function partsOf(secret: string): { id: string; secretPart: string } {
  const [, ulidPart, secretPart] = /^gsk_([^_]+)_(.+)$/.exec(secret)!;
  return { id: `key_${ulidPart}`, secretPart };
}

const writer = () => ({ org_id: orgA, permissions: ["groups:read", "groups:write"] });

async function newKey(opts: { organizationId?: string; readOnly?: boolean } = {}) {
  const k = await t.server.apiKeys.create({ name: `test-${ulid()}`, ...opts });
  secrets.push(k.secret);
  return k;
}

async function keysCli(
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      "npm",
      ["run", "-s", "keys", "--", ...args],
      {
        cwd: root,
        env: { ...process.env, DATABASE_URL: t.db.url, LOG_LEVEL: "silent" },
      },
    );
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

/** Polls until the key is refused (UNAUTHENTICATED) on the door; fails if any other answer comes. */
async function untilRefused(door: Door, secret: string): Promise<void> {
  await until(
    `the revoked key is refused over ${door}`,
    async () => {
      try {
        await read(bearer(door, secret));
        return false;
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.Unauthenticated) return true;
        throw err;
      }
    },
    API_KEY_CACHE_MS + 10_000,
  );
}

// ---------------------------------------------------------------------------
// Access tokens
// ---------------------------------------------------------------------------

const BAD_TOKENS: [string, () => Promise<string>][] = [
  [
    "expired (beyond the clock skew)",
    () => jwks.token({ ...writer(), iat: nowSeconds() - 3600, exp: nowSeconds() - 120 }),
  ],
  [
    "not yet valid (nbf beyond the clock skew)",
    () => jwks.token({ ...writer(), nbf: nowSeconds() + 300 }),
  ],
  ["without exp", () => jwks.token({ ...writer(), exp: undefined })],
  ["from another issuer", () => jwks.token({ ...writer(), iss: "https://evil.example/" })],
  ["for another audience", () => jwks.token({ ...writer(), aud: "some-other-api" })],
  [
    "alg none",
    async () =>
      `${b64url({ alg: "none", typ: "JWT" })}.${b64url({
        iss: jwks.issuer,
        aud: jwks.audience,
        sub: "mallory",
        exp: nowSeconds() + 600,
        ...writer(),
      })}.`,
  ],
  [
    "alg none naming the published kid",
    async () => {
      const valid = await jwks.token(writer());
      return `${b64url({ alg: "none", kid: jwks.rsa.kid })}.${valid.split(".")[1]}.`;
    },
  ],
  [
    "HS256 signed with the public key's PEM",
    () =>
      new SignJWT({ iss: jwks.issuer, aud: jwks.audience, exp: nowSeconds() + 600, ...writer() })
        .setProtectedHeader({ alg: "HS256", kid: jwks.rsa.kid, typ: "JWT" })
        .sign(new TextEncoder().encode(jwks.rsa.publicPem)),
  ],
  [
    "HS256 signed with the public key's JWK JSON",
    () =>
      new SignJWT({ iss: jwks.issuer, aud: jwks.audience, exp: nowSeconds() + 600, ...writer() })
        .setProtectedHeader({ alg: "HS256", kid: jwks.rsa.kid, typ: "JWT" })
        .sign(new TextEncoder().encode(JSON.stringify(jwks.rsa.publicJwk))),
  ],
  [
    "RS384 (an algorithm that is not pinned) with the published key",
    async () =>
      // The published RSA key's own material, imported for RS384.
      new SignJWT({ iss: jwks.issuer, aud: jwks.audience, exp: nowSeconds() + 600, ...writer() })
        .setProtectedHeader({ alg: "RS384", kid: jwks.rsa.kid, typ: "JWT" })
        .sign(await importPKCS8(await exportPKCS8(jwks.rsa.privateKey), "RS384")),
  ],
  [
    "signed by an unknown key (unknown kid)",
    async () => jwks.token(writer(), { key: await newSigningKey("RS256", "unknown-kid") }),
  ],
  [
    "signed by another key under the published kid",
    async () => jwks.token(writer(), { key: await newSigningKey("RS256", jwks.rsa.kid) }),
  ],
  [
    "with a tampered signature",
    async () => {
      const valid = await jwks.token(writer());
      return withPart(valid, 2, flipped(valid.split(".")[2]));
    },
  ],
  [
    "with a tampered payload (org_id changed to another organization)",
    async () => {
      const valid = await jwks.token(writer());
      const claims = JSON.parse(Buffer.from(valid.split(".")[1], "base64url").toString());
      return withPart(valid, 1, b64url({ ...claims, org_id: orgB }));
    },
  ],
  [
    "with a tampered payload (read permission raised to write)",
    async () => {
      const valid = await jwks.token({ org_id: orgA, permissions: ["groups:read"] });
      const claims = JSON.parse(Buffer.from(valid.split(".")[1], "base64url").toString());
      return withPart(
        valid,
        1,
        b64url({ ...claims, permissions: ["groups:read", "groups:write"] }),
      );
    },
  ],
  [
    "with a tampered header (kid changed)",
    async () => {
      const valid = await jwks.token(writer());
      return withPart(valid, 0, b64url({ alg: "ES256", kid: jwks.ec.kid, typ: "JWT" }));
    },
  ],
  ["garbage in three parts", async () => "abc.def.ghi"],
  ["garbage JSON in three parts", async () => `${b64url("x")}.${b64url([1])}.${b64url(null)}`],
  ["garbage", async () => "this-is-not-a-token"],
  ["two parts", async () => (await jwks.token(writer())).split(".").slice(0, 2).join(".")],
];

describe.each(DOORS)("access tokens over %s", (door) => {
  it.each(BAD_TOKENS)("a token %s → UNAUTHENTICATED", async (_what, make) => {
    await expectUnauthenticated(door, `Bearer ${await make()}`);
  });

  it("a valid token without org_id → PERMISSION_DENIED (ORGANIZATION_CLAIM_MISSING)", async () => {
    for (const org_id of [undefined, "", 42]) {
      const c = bearer(door, await jwks.token({ org_id, permissions: ["groups:write"] }));
      await expectError(read(c), Code.PermissionDenied, "ORGANIZATION_CLAIM_MISSING");
      await expectError(write(c), Code.PermissionDenied, "ORGANIZATION_CLAIM_MISSING");
    }
  });

  it("a read-only token reads its organization; its writes → PERMISSION_DENIED", async () => {
    const c = bearer(door, await jwks.token({ org_id: orgA, permissions: ["groups:read"] }));
    expect((await read(c)).organization?.id).toBe(orgA);
    expect((await c.groups.listGroups({})).groups).toBeDefined();
    await expectError(write(c), Code.PermissionDenied, "PERMISSION_MISSING");
    await expectError(
      c.orgs.updateOrganization({ organizationId: orgA, name: "changed" }),
      Code.PermissionDenied,
      "PERMISSION_MISSING",
    );
    expect((await read(c)).organization?.name).toBe("Credentials A");
  });

  it("a token without the permissions claim may neither read nor write", async () => {
    const c = bearer(door, await jwks.token({ org_id: orgA }));
    await expectError(read(c), Code.PermissionDenied, "PERMISSION_MISSING");
    await expectError(write(c), Code.PermissionDenied, "PERMISSION_MISSING");
  });

  it("a write token (RS256 or ES256, array or space-separated claim) writes in its organization only", async () => {
    const tokens = [
      await jwks.token(writer()),
      await jwks.token({ org_id: orgA, permissions: "groups:read groups:write" }, { key: jwks.ec }),
    ];
    for (const token of tokens) {
      const c = bearer(door, token);
      expect((await write(c)).group?.organizationId).toBe(orgA);
      expect((await read(c)).organization?.id).toBe(orgA);
      await expectError(write(c, orgB), Code.PermissionDenied, "ORGANIZATION_NOT_PERMITTED");
      await expectError(read(c, orgB), Code.PermissionDenied, "ORGANIZATION_NOT_PERMITTED");
    }
  });

  it("a token within the clock skew is accepted (exp just passed, nbf just ahead)", async () => {
    const c = bearer(
      door,
      await jwks.token({ ...writer(), exp: nowSeconds() - 5, nbf: nowSeconds() + 5 }),
    );
    expect((await read(c)).organization?.id).toBe(orgA);
  });
});

// ---------------------------------------------------------------------------
// API keys and the Authorization header
// ---------------------------------------------------------------------------

describe.each(DOORS)("API keys over %s", (door) => {
  it("a deployment-wide key reads and writes in every organization", async () => {
    const { secret } = await newKey();
    const c = bearer(door, secret);
    for (const org of [orgA, orgB]) {
      expect((await read(c, org)).organization?.id).toBe(org);
      expect((await write(c, org)).group?.organizationId).toBe(org);
    }
  });

  it("a key limited to A works in A only", async () => {
    const { secret } = await newKey({ organizationId: orgA });
    const c = bearer(door, secret);
    expect((await read(c)).organization?.id).toBe(orgA);
    expect((await write(c)).group?.organizationId).toBe(orgA);
    await expectError(read(c, orgB), Code.PermissionDenied, "ORGANIZATION_NOT_PERMITTED");
    await expectError(write(c, orgB), Code.PermissionDenied, "ORGANIZATION_NOT_PERMITTED");
  });

  it("a read-only key reads; its writes → PERMISSION_DENIED", async () => {
    const { secret } = await newKey({ readOnly: true });
    const c = bearer(door, secret);
    expect((await read(c)).organization?.id).toBe(orgA);
    await expectError(write(c), Code.PermissionDenied, "PERMISSION_MISSING");
    await expectError(
      c.orgs.deleteOrganization({ organizationId: orgB }),
      Code.PermissionDenied,
      "PERMISSION_MISSING",
    );
    expect((await read(c, orgB)).organization?.id).toBe(orgB);
  });

  it("unknown, malformed and wrong-secret keys → UNAUTHENTICATED", async () => {
    const real = await newKey();
    const { secretPart } = partsOf(real.secret);
    const id = real.key.id.slice("key_".length);
    const otherSecret = randomBytes(32).toString("base64url");
    const candidates = [
      `gsk_${ulid()}_${randomBytes(32).toString("base64url")}`, // right format, never issued
      `gsk_${id}_${otherSecret}`, // a real key's id, another secret
      `gsk_${id}_${flipped(secretPart)}`, // one character off
      `gsk_${id}_${secretPart.slice(0, -1)}`, // one character short
      `gsk_${id}_${secretPart}x`, // one character long
      `gsk_${id.toLowerCase()}_${secretPart}`,
      `gsk_${id}`,
      `gsk_${secretPart}`,
      "gsk_",
      "gsk_abc",
      real.key.id, // the id alone
      secretPart, // the secret part alone
      `${t.apiKey}x`, // the bootstrap key, one character long
      t.apiKey.slice(0, -1), // and one short
    ];
    for (const token of candidates) await expectUnauthenticated(door, `Bearer ${token}`);
    // The real key still works: the refusals above were about the tokens.
    expect((await read(bearer(door, real.secret))).organization?.id).toBe(orgA);
  });

  it("a key revoked with server.apiKeys.revoke → UNAUTHENTICATED", async () => {
    const { key, secret } = await newKey({ organizationId: orgA });
    expect((await read(bearer(door, secret))).organization?.id).toBe(orgA);
    await t.server.apiKeys.revoke(key.id);
    await untilRefused(door, secret);
    await expectUnauthenticated(door, `Bearer ${secret}`);
  });

  it("a key revoked with the CLI in another process → UNAUTHENTICATED within API_KEY_CACHE_MS", async () => {
    const { key, secret } = await newKey();
    // Used (and so cached as valid) before the revocation.
    expect((await read(bearer(door, secret))).organization?.id).toBe(orgA);
    const res = await keysCli("revoke", key.id);
    expect(res, res.stderr).toMatchObject({ code: 0 });
    expect(res.stdout).toContain(key.id);
    await untilRefused(door, secret);
    await expectUnauthenticated(door, `Bearer ${secret}`);
  });

  it("no Authorization header, another scheme, or an empty bearer → UNAUTHENTICATED", async () => {
    const { secret } = await newKey();
    const basic = Buffer.from(`admin:${secret}`).toString("base64");
    for (const header of [
      null,
      "",
      `Basic ${basic}`,
      `Basic ${secret}`,
      `Token ${secret}`,
      secret,
      "Bearer",
      "Bearer ",
      `Bearer ${secret} extra`,
      `Bearer ${secret}, Bearer ${secret}`,
    ]) {
      await expectUnauthenticated(door, header);
    }
    expect((await read(bearer(door, secret))).organization?.id).toBe(orgA);
  });
});

// ---------------------------------------------------------------------------
// The keys CLI, and what the database holds
// ---------------------------------------------------------------------------

describe("the keys CLI", () => {
  it("create --organization --json prints a secret that works, limited to that organization, on every door", async () => {
    const res = await keysCli("create", "--name", "cli-made", "--organization", orgA, "--json");
    expect(res, res.stderr).toMatchObject({ code: 0 });
    const created = JSON.parse(res.stdout) as Record<string, unknown>;
    expect(created).toMatchObject({ name: "cli-made", organizationId: orgA });
    const secret = created.secret as string;
    expect(secret).toMatch(/^gsk_/);
    secrets.push(secret);
    for (const door of DOORS) {
      const c = bearer(door, secret);
      expect((await read(c)).organization?.id).toBe(orgA);
      expect((await write(c)).group?.organizationId).toBe(orgA);
      await expectError(read(c, orgB), Code.PermissionDenied, "ORGANIZATION_NOT_PERMITTED");
    }
  });

  it("list --json lists the keys and never a secret", async () => {
    const made = await newKey({ readOnly: true });
    const res = await keysCli("list", "--json");
    expect(res, res.stderr).toMatchObject({ code: 0 });
    const listed = JSON.parse(res.stdout) as { id: string }[];
    expect(listed.map((k) => k.id)).toContain(made.key.id);
    expect(listed.length).toBeGreaterThanOrEqual(secrets.length);
    const output = res.stdout + res.stderr;
    expect(output).not.toMatch(/gsk_/);
    for (const secret of secrets) {
      expect(output).not.toContain(secret);
      expect(output).not.toContain(partsOf(secret).secretPart);
    }
  });
});

describe("the database", () => {
  it("holds no API key secret (nor its secret part) in any column of any table", async () => {
    await newKey();
    await newKey({ organizationId: orgB, readOnly: true });
    const [tables] = await t.db.sql.query<RowDataPacket[]>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?",
      [t.db.name],
    );
    expect(tables.map((r) => r.name)).toContain("api_keys");
    let dump = "";
    for (const { name } of tables) {
      const [rows] = await t.db.sql.query<RowDataPacket[]>(`SELECT * FROM \`${name}\``);
      for (const row of rows) {
        for (const value of Object.values(row)) {
          // Text as stored, and binary columns both as bytes-as-text and as hex.
          dump += Buffer.isBuffer(value)
            ? `${value.toString("utf8")}\n${value.toString("hex")}\n${value.toString("base64url")}\n`
            : `${value instanceof Date ? value.toISOString() : String(value)}\n`;
        }
      }
    }
    // The dump did see the keys (their ids are stored), just not their secrets.
    const [[{ n }]] = await t.db.sql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM api_keys");
    expect(Number(n)).toBeGreaterThanOrEqual(secrets.length);
    expect(secrets.length).toBeGreaterThan(10);
    for (const secret of secrets) {
      const { id, secretPart } = partsOf(secret);
      expect(dump).toContain(id);
      expect(dump).not.toContain(secret);
      expect(dump).not.toContain(secretPart);
    }
    expect(dump).not.toContain(t.apiKey);
  });
});
