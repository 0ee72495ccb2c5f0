/**
 * The admin page at /admin (issue 5) in a real browser: Debian's chromium,
 * headless, driven by playwright-core against a real server on a fresh
 * MariaDB database. Every action is made on the page, then checked in the
 * database (direct SQL), in the events (EventsService.ListEvents), and in the
 * page's live events panel (fed by StreamEvents). Leaves a screenshot in
 * test-results/admin-page.png.
 */
import { existsSync, mkdirSync } from "node:fs";
import type { RowDataPacket } from "mysql2/promise";
import { chromium, type Browser, type Page } from "playwright-core";
import { ulid } from "ulid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../clients/src/gen/groups/v1/events_pb.js";
import { errorDetails } from "../../clients/src/sdk/errors.js";
import { createNodeClients } from "../../clients/src/sdk/node.js";
import type { GroupsClients } from "../../clients/src/sdk/clients.js";
import { ADMIN_CSP } from "../../server/src/ops/admin-page.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { until } from "../support/wait.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = "test-results/admin-page.png";
/** How long any one thing may take to show on the page or in the database. */
const WAIT = { timeout: 15_000, interval: 50 };

let t: TestServer;
let api: GroupsClients;
let browser: Browser;
let page: Page;
let organizationId: string;
/** user_01 … user_12 of the organization, oldest first. */
let members: { id: string; userId: string }[] = [];
/** Team 01 … Team 25, oldest first. */
let seeded: string[] = [];
const problems: string[] = [];
let screenshotTaken = false;

beforeAll(async () => {
  // Browser first: it is independent of the server, and fails fast if missing.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  t = await startTestServer();
  api = createNodeClients({ baseUrl: `http://${t.grpcAddress}`, token: t.apiKey });

  // Seed: two organizations; in the first, 12 memberships, 25 groups, and the
  // newest group ("Team 25") holding all 12 members.
  await api.organizations.createOrganization({ name: "Other Org" });
  const { organization } = await api.organizations.createOrganization({ name: "Acme Admin" });
  organizationId = organization!.id;
  for (let i = 1; i <= 12; i++) {
    const userId = `user_${String(i).padStart(2, "0")}`;
    const { organizationMembership: m } = await api.organizations.createOrganizationMembership({
      organizationId,
      userId,
    });
    members.push({ id: m!.id, userId });
  }
  for (let i = 1; i <= 25; i++) {
    const name = `Team ${String(i).padStart(2, "0")}`;
    seeded.push((await api.groups.createGroup({ organizationId, name })).group!.id);
  }
  await api.groups.batchAddGroupMembers({
    organizationId,
    groupId: seeded[24],
    organizationMembershipIds: members.map((m) => m.id),
  });
  // The page lists recent events and streams after the last one, so let the
  // relay sequence the seed first (ListEvents shows only sequenced events).
  await until("the seed's events are sequenced", async () => {
    const [rows] = await t.db.sql.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM events WHERE sequence IS NULL",
    );
    return Number(rows[0].n) === 0;
  });

  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(WAIT.timeout);
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (/Content Security Policy|Uncaught/i.test(msg.text())) problems.push(msg.text());
  });
});

afterAll(async () => {
  if (page && !screenshotTaken) {
    mkdirSync("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/admin-page-failure.png", fullPage: true });
  }
  await browser?.close();
  await t?.close();
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const byTestId = (id: string) => page.getByTestId(id);

/** The group ids in the groups table, top to bottom. */
const shownGroups = () =>
  page.$$eval("[data-testid=group-row]", (rows) =>
    rows.map((r) => r.getAttribute("data-group-id")),
  );

/** The membership ids in the members table, top to bottom. */
const shownMembers = () =>
  page.$$eval("[data-testid=member-row]", (rows) =>
    rows.map((r) => r.getAttribute("data-membership-id")),
  );

/** The `type id-of-subject` of every entry in the events panel, newest first. */
const shownEvents = () =>
  page.$$eval("[data-testid=event]", (items) =>
    items.map((li) => `${li.getAttribute("data-event-type")} ${li.textContent}`),
  );

async function textOf(testId: string): Promise<string> {
  return (await byTestId(testId).textContent()) ?? "";
}

/** Waits for the status line to report the action's success (and no error). */
async function expectStatus(pattern: RegExp): Promise<void> {
  await expect.poll(() => textOf("status"), WAIT).toMatch(pattern);
  expect(await byTestId("error").isHidden()).toBe(true);
}

/** Every event of the organization (ListEvents), walking all pages. */
async function listedEvents(): Promise<Event[]> {
  const all: Event[] = [];
  let after = "";
  do {
    const r = await api.events.listEvents({ organizationId, after, limit: 1000 });
    all.push(...r.events);
    after = r.listMetadata?.after ?? "";
  } while (after !== "");
  return all;
}

const subjectOf = (e: Event) =>
  e.data.case === "group"
    ? e.data.value.group?.id
    : e.data.case === "member"
      ? `${e.data.value.groupId} ${e.data.value.organizationMembershipId}`
      : undefined;

/** Waits until ListEvents has an event of `type` about `subject`, and the events panel shows it. */
async function expectEvent(type: string, groupId: string, membershipId?: string): Promise<Event> {
  const subject = membershipId ? `${groupId} ${membershipId}` : groupId;
  let found: Event | undefined;
  await expect
    .poll(async () => {
      found = (await listedEvents()).find((e) => e.type === type && subjectOf(e) === subject);
      return found?.id;
    }, WAIT)
    .toBeTruthy();
  // Shown live: the panel's entry carries the event's id.
  await page.locator(`[data-testid=event][data-event-id="${found!.id}"]`).waitFor();
  const entry = page.locator(`[data-testid=event][data-event-id="${found!.id}"]`);
  expect(await entry.getAttribute("data-event-type")).toBe(type);
  expect(await entry.textContent()).toContain(groupId);
  if (membershipId) expect(await entry.textContent()).toContain(membershipId);
  return found!;
}

async function groupRow(id: string): Promise<{ name: string; description: string | null } | null> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(
    "SELECT name, description FROM org_groups WHERE id = ? AND deleted_at IS NULL",
    [id],
  );
  return rows.length ? { name: rows[0].name, description: rows[0].description } : null;
}

async function groupMemberIds(groupId: string): Promise<string[]> {
  const [rows] = await t.db.sql.query<RowDataPacket[]>(
    "SELECT organization_membership_id AS id FROM group_memberships WHERE group_id = ? ORDER BY id",
    [groupId],
  );
  return rows.map((r) => r.id as string);
}

/** What the service says to the SDK for a call, to compare with what the page shows. */
async function serviceSays(call: Promise<unknown>) {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should fail").toBeDefined();
  return errorDetails(err);
}

async function expectErrorShown(said: Awaited<ReturnType<typeof serviceSays>>, action: string) {
  await byTestId("error").waitFor({ state: "visible" });
  const code = said.codeName.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  expect(await textOf("error")).toContain(`${action} failed:`);
  expect(await textOf("error-code")).toBe(code);
  expect(await textOf("error-message")).toBe(said.message);
  expect(await textOf("error-reason")).toBe(said.reason);
  expect(said.reason).not.toBe("");
}

let created: string; // the group made on the page

// ---------------------------------------------------------------------------
// The scenario (each step builds on the one before)
// ---------------------------------------------------------------------------

describe("admin page", () => {
  it("is served at /admin with its assets, content types and a CSP", async () => {
    const redirect = await fetch(`${t.httpUrl}/admin`, { redirect: "manual" });
    expect(redirect.status).toBe(308);
    expect(new URL(redirect.headers.get("location")!, `${t.httpUrl}/admin`).pathname).toBe(
      "/admin/",
    );
    for (const [path, type] of [
      ["/admin/", "text/html; charset=utf-8"],
      ["/admin/app.js", "text/javascript; charset=utf-8"],
      ["/admin/app.css", "text/css; charset=utf-8"],
    ]) {
      const res = await fetch(`${t.httpUrl}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect(res.headers.get("content-security-policy"), path).toBe(ADMIN_CSP);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const etag = res.headers.get("etag")!;
      expect(
        (await fetch(`${t.httpUrl}${path}`, { headers: { "if-none-match": etag } })).status,
      ).toBe(304);
    }
    expect(ADMIN_CSP).toContain("script-src 'self'");
    expect((await fetch(`${t.httpUrl}/admin/nope.js`)).status).toBe(404);
    expect((await fetch(`${t.httpUrl}/admin/`, { method: "POST" })).status).toBe(405);
    // The page is public, the RPCs are not.
    const rpc = await fetch(`${t.httpUrl}/groups.v1.OrganizationsService/ListOrganizations`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
    expect(rpc.status).toBe(401);
  });

  it("shows a wrong key's error as the service states it, then lists organizations with the key", async () => {
    const response = await page.goto(`${t.httpUrl}/admin`);
    expect(response?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe("/admin/");

    await byTestId("token-input").fill("not-the-key");
    await byTestId("token-save").click();
    const said = await serviceSays(
      createNodeClients({
        baseUrl: t.httpUrl,
        protocol: "connect",
        token: "not-the-key",
      }).organizations.listOrganizations({ limit: 100 }),
    );
    await expectErrorShown(said, "List organizations");
    expect(await textOf("error-code")).toBe("UNAUTHENTICATED");

    await byTestId("token-input").fill(t.apiKey);
    await byTestId("token-save").click();
    await page.locator(`[data-testid=org-select] option[value="${organizationId}"]`).waitFor({
      state: "attached",
    });
    expect(await byTestId("error").isHidden()).toBe(true);
    expect(await page.evaluate(`sessionStorage.getItem("groups-admin-token")`)).toBe(t.apiKey);
    const options = await page.$$eval("[data-testid=org-select] option", (os) =>
      os.map((o) => o.textContent),
    );
    expect(options).toEqual(
      expect.arrayContaining([
        `Acme Admin (${organizationId})`,
        expect.stringMatching(/^Other Org/),
      ]),
    );
  });

  it("picks the organization: first page of its groups, recent events, then live", async () => {
    await byTestId("org-select").selectOption(organizationId);
    const newestFirst = [...seeded].reverse();
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(0, 10));
    expect(await textOf("groups-page")).toMatch(/^Page 1/);
    expect(await byTestId("groups-prev").isDisabled()).toBe(true);
    // The last hour's events (the seed) are listed, then the panel follows live.
    await expect.poll(() => textOf("events-status"), WAIT).toBe("(live)");
    const events = await shownEvents();
    expect(events.filter((e) => e.startsWith("group.created"))).toHaveLength(25);
    expect(events.filter((e) => e.startsWith("group.member_added"))).toHaveLength(12);
  });

  it("pages through the groups with next and previous (list_metadata cursors)", async () => {
    const newestFirst = [...seeded].reverse();
    await byTestId("groups-next").click();
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(10, 20));
    expect(await textOf("groups-page")).toMatch(/^Page 2/);
    await byTestId("groups-next").click();
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(20, 25));
    expect(await textOf("groups-page")).toMatch(/^Page 3/);
    expect(await byTestId("groups-next").isDisabled()).toBe(true);
    await byTestId("groups-prev").click();
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(10, 20));
    await byTestId("groups-prev").click();
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(0, 10));
    expect(await byTestId("groups-prev").isDisabled()).toBe(true);
    // A larger page shows them all at once.
    await byTestId("page-size").selectOption("50");
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst);
    expect(await byTestId("groups-next").isDisabled()).toBe(true);
    await byTestId("page-size").selectOption("10");
    await expect.poll(shownGroups, WAIT).toEqual(newestFirst.slice(0, 10));
  });

  it("creates a group", async () => {
    await byTestId("group-create-name").fill("Made in the browser");
    await byTestId("group-create-description").fill("created on /admin");
    await byTestId("group-create-submit").click();
    await expectStatus(/^Created group “Made in the browser” \(group_/);
    created = await textOf("group-id");
    expect(created).toMatch(/^group_[0-9A-HJKMNP-TV-Z]{26}$/);
    // Shown at the top of page 1, and selected.
    await expect.poll(async () => (await shownGroups())[0], WAIT).toBe(created);
    expect(await byTestId("group-panel").isVisible()).toBe(true);
    // Stored, and recorded as an event.
    expect(await groupRow(created)).toEqual({
      name: "Made in the browser",
      description: "created on /admin",
    });
    const e = await expectEvent("group.created", created);
    expect(e.data.case === "group" && e.data.value.group?.name).toBe("Made in the browser");
  });

  it("renames the group (UpdateGroup)", async () => {
    await byTestId("group-edit-name").fill("Renamed in the browser");
    await byTestId("group-edit-save").click();
    await expectStatus(/^Saved group “Renamed in the browser”/);
    await expect
      .poll(
        () => page.locator(`[data-group-id="${created}"] [data-testid=group-name]`).textContent(),
        WAIT,
      )
      .toBe("Renamed in the browser");
    expect(await groupRow(created)).toEqual({
      name: "Renamed in the browser",
      description: "created on /admin",
    });
    const e = await expectEvent("group.updated", created);
    expect(e.data.case === "group" && e.data.value.previous?.name).toBe("Made in the browser");
  });

  it("adds members by organization membership id", async () => {
    for (const m of [members[0], members[1]]) {
      await byTestId("member-add-input").fill(m.id);
      await byTestId("member-add-submit").click();
      await expectStatus(new RegExp(`^Added ${m.id} to “Renamed in the browser”`));
      await page.locator(`[data-testid=member-row][data-membership-id="${m.id}"]`).waitFor();
      await expectEvent("group.member_added", created, m.id);
    }
    expect(await shownMembers()).toEqual(expect.arrayContaining([members[0].id, members[1].id]));
    expect(await textOf("group-panel-member-count")).toBe("2");
    await expect
      .poll(
        () =>
          page
            .locator(`[data-group-id="${created}"] [data-testid=group-member-count]`)
            .textContent(),
        WAIT,
      )
      .toBe("2");
    expect(await groupMemberIds(created)).toEqual([members[0].id, members[1].id].sort());
  });

  it("removes a member", async () => {
    const gone = members[0];
    await page
      .locator(
        `[data-testid=member-row][data-membership-id="${gone.id}"] [data-testid=member-remove]`,
      )
      .click();
    await expectStatus(new RegExp(`^Removed ${gone.id} \\(${gone.userId}\\)`));
    await expect.poll(shownMembers, WAIT).toEqual([members[1].id]);
    expect(await groupMemberIds(created)).toEqual([members[1].id]);
    await expectEvent("group.member_removed", created, gone.id);
  });

  it("shows errors as the service states them (code, message, reason, fields)", async () => {
    const before = await groupMemberIds(created);
    const unknown = `om_${ulid()}`;
    await byTestId("member-add-input").fill(unknown);
    await byTestId("member-add-submit").click();
    const said = await serviceSays(
      api.groups.addGroupMember({
        organizationId,
        groupId: created,
        organizationMembershipId: unknown,
      }),
    );
    expect(said.reason).toBe("ORGANIZATION_MEMBERSHIP_NOT_FOUND");
    await expectErrorShown(said, "Add member");
    expect(await textOf("error-code")).toBe("NOT_FOUND");

    // A malformed id: INVALID_ARGUMENT naming the field.
    await byTestId("member-add-input").fill("not-an-id");
    await byTestId("member-add-submit").click();
    const bad = await serviceSays(
      api.groups.addGroupMember({
        organizationId,
        groupId: created,
        organizationMembershipId: "not-an-id",
      }),
    );
    await expect.poll(() => textOf("error-code"), WAIT).toBe("INVALID_ARGUMENT");
    await expectErrorShown(bad, "Add member");
    expect(await textOf("error-fields")).toContain("organization_membership_id");
    expect(await groupMemberIds(created)).toEqual(before);
  });

  it("lists a group's members in pages", async () => {
    await page.locator(`[data-group-id="${seeded[24]}"] [data-testid=group-open]`).click();
    await expect.poll(() => textOf("group-id"), WAIT).toBe(seeded[24]);
    const all = await groupMemberIds(seeded[24]);
    expect(all).toHaveLength(12);
    await expect.poll(async () => (await shownMembers()).length, WAIT).toBe(10);
    const first = await shownMembers();
    await byTestId("members-next").click();
    await expect.poll(async () => (await shownMembers()).length, WAIT).toBe(2);
    const second = await shownMembers();
    expect([...first, ...second].sort()).toEqual(all);
    expect(await byTestId("members-next").isDisabled()).toBe(true);
    await byTestId("members-prev").click();
    await expect.poll(shownMembers, WAIT).toEqual(first);
  });

  it("shows events made elsewhere live", async () => {
    const { group } = await api.groups.createGroup({ organizationId, name: "Made by the API" });
    await page
      .locator(`[data-testid=event][data-event-type="group.created"]`, {
        hasText: group!.id,
      })
      .waitFor();
    await expectEvent("group.created", group!.id);
  });

  it("deletes a group", async () => {
    await byTestId("groups-reload").click();
    await page.locator(`[data-group-id="${created}"] [data-testid=group-open]`).click();
    await expect.poll(() => textOf("group-id"), WAIT).toBe(created);
    await byTestId("group-delete").click();
    await byTestId("group-delete-confirm").click();
    await expectStatus(new RegExp(`^Deleted group “Renamed in the browser” \\(${created}\\)`));
    await expect.poll(async () => (await shownGroups()).includes(created), WAIT).toBe(false);
    expect(await byTestId("group-panel").isHidden()).toBe(true);
    // Gone from the live rows (deleted_at set; the reaper removes the rest later).
    expect(await groupRow(created)).toBeNull();
    await expectEvent("group.deleted", created);

    // The screenshot shows a group with members, the groups and the events.
    await page.locator(`[data-group-id="${seeded[24]}"] [data-testid=group-open]`).click();
    await expect.poll(async () => (await shownMembers()).length, WAIT).toBe(10);
    mkdirSync("test-results", { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    screenshotTaken = true;
    expect(existsSync(SCREENSHOT)).toBe(true);
  });

  it("ran without script errors or CSP violations", () => {
    expect(problems).toEqual([]);
  });
});
