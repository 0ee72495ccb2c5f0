import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

/** The `groups` CLI as a newcomer uses it: create an organization, a membership, a group, add, see the event. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});

afterAll(async () => {
  await t?.close();
});

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["clients/bin/groups.mjs", ...args],
      {
        cwd: root,
        env: { ...process.env, GROUPS_ADDRESS: `http://${t.grpcAddress}`, GROUPS_TOKEN: t.apiKey },
      },
    );
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
const firstWord = (s: string) => s.trim().split(/\s+/)[0];

describe("groups CLI", () => {
  it("creates an organization, a membership and a group, adds the member, and shows the event", async () => {
    const org = firstWord((await cli("orgs", "create", "CLI Corp")).stdout);
    expect(org).toMatch(/^org_/);
    const om = firstWord((await cli("memberships", "create", org, "user_7")).stdout);
    expect(om).toMatch(/^om_/);
    const group = firstWord((await cli("groups", "create", org, "Engineering")).stdout);
    expect(group).toMatch(/^group_/);
    expect((await cli("groups", "add", org, group, om)).stdout).toContain("added;");
    expect((await cli("groups", "add", org, group, om)).stdout).toContain("already a member");

    const listed = JSON.parse((await cli("--json", "groups", "members", org, group)).stdout);
    expect(listed.organizationMemberships.map((m: { id: string }) => m.id)).toEqual([om]);

    const first = JSON.parse((await cli("--json", "events", "list", "--organization", org)).stdout);
    expect(first.events.map((e: { type: string }) => e.type)).toEqual([
      "group.created",
      "group.member_added",
    ]);
  });

  it("prints the service's error reason and bad fields, and exits 1", async () => {
    const res = await cli("groups", "create", "org_nope", "");
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("InvalidArgument INVALID_FIELDS");
    expect(res.stderr).toContain("organization_id:");
    expect(res.stderr).toContain("name: is required");
  });
});
