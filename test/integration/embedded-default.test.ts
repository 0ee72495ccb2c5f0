/**
 * The embedded default (SPEC §7): with no DATABASE_URL and no authentication
 * configured, the first start creates a deployment-wide API key, saves it
 * beside the database (mode 0600) and later starts reuse it; with JWTs
 * configured, nothing is created.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterEach, expect, it } from "vitest";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { loadConfig } from "../../server/src/config.js";
import { startServer, type RunningServer } from "../../server/src/server.js";

const dirs: string[] = [];
const servers: RunningServer[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(dir: string, env: Record<string, string> = {}): Promise<RunningServer> {
  const config = loadConfig({
    SQLITE_PATH: path.join(dir, "groups.sqlite"),
    PORT: "0",
    GRPC_PORT: "0",
    LOG_LEVEL: "silent",
    ...env,
  });
  const server = await startServer(config, { log: pino({ level: "silent" }) });
  servers.push(server);
  return server;
}

const listWith = (server: RunningServer, key: string) =>
  createClient(
    OrganizationsService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${server.grpcPort}`,
      interceptors: [
        (next) => (req) => (req.header.set("authorization", `Bearer ${key}`), next(req)),
      ],
    }),
  ).listOrganizations({});

it("creates a key on first start, only readable by its owner, and reuses it", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "groups-embedded-"));
  dirs.push(dir);
  const first = await start(dir);
  const file = path.join(dir, "api-key");
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const key = readFileSync(file, "utf8").trim();
  expect(key).toMatch(/^gsk_/);
  await expect(listWith(first, key)).resolves.toBeDefined();
  await first.close();
  servers.splice(servers.indexOf(first), 1);

  const second = await start(dir);
  expect(readFileSync(file, "utf8").trim()).toBe(key);
  await expect(listWith(second, key)).resolves.toBeDefined();
});

it("creates no key when JWTs are configured: that is authentication", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "groups-embedded-"));
  dirs.push(dir);
  await start(dir, {
    JWT_JWKS_URL: "https://idp.example/.well-known/jwks.json",
    JWT_ISSUER: "https://idp.example/",
    JWT_AUDIENCE: "groups",
  });
  expect(existsSync(path.join(dir, "api-key"))).toBe(false);
});
