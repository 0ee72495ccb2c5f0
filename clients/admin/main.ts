/**
 * The admin page served at /admin: plain DOM over the SDK's Connect-Web
 * clients (same origin as the RPCs, so no CORS). The key or token entered on
 * the page is kept in sessionStorage and sent as `Authorization: Bearer …`.
 * Every failed call is shown as the service states it: code, message and the
 * ErrorInfo reason (plus BadRequest field violations).
 */
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  createWebClients,
  errorDetails,
  OrganizationMembershipStatus,
  type Event,
  type Group,
  type Organization,
  type OrganizationMembership,
} from "../src/browser.js";

const TOKEN_KEY = "groups-admin-token";
/** Events shown at most (older ones scroll out). */
const MAX_EVENTS = 200;
/** History loaded when an organization is picked, before following live events. */
const HISTORY_MS = 60 * 60 * 1000;

// ---------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

type Child = Node | string | null | undefined | false;

/** Creates an element; text is always set as text (never parsed as HTML). */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

const utc = (t: Timestamp | undefined) =>
  t ? timestampDate(t).toISOString().replace("T", " ").slice(0, 19) : "";

/** "NotFound" → "NOT_FOUND", the code's name in the gRPC spec. */
const codeName = (name: string) => name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

const statusName = (s: OrganizationMembershipStatus) =>
  (OrganizationMembershipStatus[s] ?? String(s)).toLowerCase();

// ---------------------------------------------------------------------------
// Clients, errors and status
// ---------------------------------------------------------------------------

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
const api = createWebClients({
  // The RPCs live at the root of the origin the page comes from (…/admin/ → …/).
  baseUrl: new URL("../", location.href).href.replace(/\/$/, ""),
  token: () => token,
  // Reads are retried on UNAVAILABLE by the SDK; a person is waiting, so keep it short.
  retryAttempts: 2,
});

const errorBox = $("error");
const statusLine = $("status");

function showError(action: string, err: unknown): void {
  const d = errorDetails(err);
  $("error-action").textContent = `${action} failed:`;
  $("error-code").textContent = codeName(d.codeName);
  $("error-message").textContent = d.message;
  $("error-reason").textContent = d.reason;
  $("error-reason-label").hidden = d.reason === "";
  $("error-metadata").textContent = Object.entries(d.metadata)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  $("error-fields").replaceChildren(
    ...d.fieldViolations.map((f) => h("li", {}, h("code", {}, f.field), `: ${f.description}`)),
  );
  errorBox.hidden = false;
  statusLine.textContent = "";
}

function clearError(): void {
  errorBox.hidden = true;
}

function say(message: string): void {
  statusLine.textContent = message;
}

/** Runs one user action: clears the last error, shows a failure as the service stated it. */
async function act(action: string, fn: () => Promise<string | void>): Promise<void> {
  clearError();
  try {
    const done = await fn();
    if (done) say(done);
  } catch (err) {
    showError(action, err);
  }
}

$("error-close").addEventListener("click", clearError);

// ---------------------------------------------------------------------------
// Token
// ---------------------------------------------------------------------------

const tokenInput = $<HTMLInputElement>("token");
tokenInput.value = token;

function showTokenState(): void {
  $("token-status").textContent = token ? "key set for this tab" : "no key";
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = tokenInput.value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
  void loadOrganizations({});
});

$("token-forget").addEventListener("click", () => {
  token = "";
  tokenInput.value = "";
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
  selectOrganization("");
  orgSelect.replaceChildren(h("option", { value: "" }, "— enter a key first —"));
  orgSelect.disabled = true;
  for (const id of ["orgs-prev", "orgs-next", "orgs-reload"])
    $<HTMLButtonElement>(id).disabled = true;
  say("Key forgotten.");
});

// ---------------------------------------------------------------------------
// Keyset pages (list_metadata.before / after)
// ---------------------------------------------------------------------------

interface Cursor {
  before?: string;
  after?: string;
}

/** One paged list: remembers the request of the shown page and its neighbours' cursors. */
class Pager {
  current: Cursor = {};
  before = "";
  after = "";
  number = 1;
  private pending: number | undefined;

  constructor(
    private readonly prev: HTMLButtonElement,
    private readonly next: HTMLButtonElement,
    private readonly label: HTMLElement,
    private readonly load: (c: Cursor) => Promise<void>,
  ) {
    prev.addEventListener("click", () => void this.go({ before: this.before }, -1));
    next.addEventListener("click", () => void this.go({ after: this.after }, +1));
  }

  /** Loads the page at `cursor`: `step` 0 is the first page, ±1 a neighbour. */
  async go(cursor: Cursor, step: number): Promise<void> {
    this.pending = step === 0 ? 1 : Math.max(1, this.number + step);
    // One page request at a time, so answers cannot arrive out of order.
    this.prev.disabled = this.next.disabled = true;
    try {
      await this.load(cursor);
    } finally {
      this.pending = undefined;
      this.prev.disabled = this.before === "";
      this.next.disabled = this.after === "";
    }
  }

  /** Called by `load` with the answer's list_metadata. */
  shown(cursor: Cursor, meta: { before: string; after: string } | undefined, count: number): void {
    this.current = cursor;
    this.before = meta?.before ?? "";
    this.after = meta?.after ?? "";
    this.number = this.before === "" ? 1 : (this.pending ?? this.number);
    this.prev.disabled = this.before === "";
    this.next.disabled = this.after === "";
    this.label.textContent = `Page ${this.number} · ${count} shown`;
  }
}

const pageSize = $<HTMLSelectElement>("page-size");
const limit = () => Number(pageSize.value);

// ---------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------

const orgSelect = $<HTMLSelectElement>("org-select");
let organizationId = "";
const orgNames = new Map<string, string>();

const orgPager = new Pager(
  $<HTMLButtonElement>("orgs-prev"),
  $<HTMLButtonElement>("orgs-next"),
  h("span"),
  (c) => loadOrganizations(c),
);

async function loadOrganizations(cursor: Cursor): Promise<void> {
  await act("List organizations", async () => {
    const r = await api.organizations.listOrganizations({ limit: 100, ...cursor });
    orgPager.shown(cursor, r.listMetadata, r.organizations.length);
    renderOrganizations(r.organizations);
    $<HTMLButtonElement>("orgs-reload").disabled = false;
    return r.organizations.length === 0 ? "No organizations yet." : undefined;
  });
}

function renderOrganizations(orgs: Organization[]): void {
  const options = [h("option", { value: "" }, "— pick an organization —")];
  for (const o of orgs) {
    orgNames.set(o.id, o.name);
    options.push(h("option", { value: o.id }, `${o.name} (${o.id})`));
  }
  if (organizationId && !orgs.some((o) => o.id === organizationId)) {
    options.push(h("option", { value: organizationId }, orgLabel(organizationId)));
  }
  orgSelect.replaceChildren(...options);
  orgSelect.value = organizationId;
  orgSelect.disabled = false;
}

const orgLabel = (id: string) => `${orgNames.get(id) ?? ""} (${id})`;

orgSelect.addEventListener("change", () => selectOrganization(orgSelect.value));
$("orgs-reload").addEventListener("click", () => void loadOrganizations(orgPager.current));

function selectOrganization(id: string): void {
  organizationId = id;
  selectGroup(undefined);
  $("org-body").hidden = id === "";
  groupsBody.replaceChildren();
  if (id === "") {
    stopEvents();
    return;
  }
  void groupsPager.go({}, 0);
  void loadMembershipChoices();
  void followEvents(id);
}

/** Fills the member input's suggestions with the organization's memberships (first 100). */
async function loadMembershipChoices(): Promise<void> {
  const org = organizationId;
  try {
    const r = await api.organizations.listOrganizationMemberships({
      organizationId: org,
      limit: 100,
    });
    if (org !== organizationId) return;
    $("org-memberships").replaceChildren(
      ...r.organizationMemberships.map((m) =>
        h("option", { value: m.id }, `${m.userId} (${statusName(m.status)})`),
      ),
    );
  } catch {
    // Only suggestions; the id can still be typed.
  }
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

const groupsBody = $("groups-body");
let groups: Group[] = [];
let selected: Group | undefined;

const groupsPager = new Pager(
  $<HTMLButtonElement>("groups-prev"),
  $<HTMLButtonElement>("groups-next"),
  $("groups-page"),
  (c) => loadGroups(c),
);

async function loadGroups(cursor: Cursor): Promise<void> {
  const org = organizationId;
  await act("List groups", async () => {
    const r = await api.groups.listGroups({ organizationId: org, limit: limit(), ...cursor });
    if (org !== organizationId) return;
    groups = r.groups;
    groupsPager.shown(cursor, r.listMetadata, r.groups.length);
    renderGroups();
  });
}

/** Reloads the page being shown (e.g. after a change); its cursor may be gone, then page 1. */
async function reloadGroups(): Promise<void> {
  const org = organizationId;
  const cursor = groupsPager.current;
  try {
    const r = await api.groups.listGroups({ organizationId: org, limit: limit(), ...cursor });
    if (org !== organizationId) return;
    groups = r.groups;
    groupsPager.shown(cursor, r.listMetadata, r.groups.length);
    renderGroups();
  } catch {
    await groupsPager.go({}, 0);
  }
}

function renderGroups(): void {
  groupsBody.replaceChildren(
    ...groups.map((g) => {
      const open = h("button", { type: "button", "data-testid": "group-open" }, "Open");
      open.addEventListener("click", () => selectGroup(g));
      return h(
        "tr",
        {
          "data-testid": "group-row",
          "data-group-id": g.id,
          class: g.id === selected?.id ? "selected" : "",
        },
        h("td", { "data-testid": "group-name" }, g.name),
        h("td", { "data-testid": "group-description" }, g.description),
        h("td", { "data-testid": "group-member-count" }, String(g.memberCount)),
        h("td", {}, h("code", {}, g.id)),
        h("td", {}, utc(g.createdAt)),
        h("td", {}, open),
      );
    }),
  );
  $("groups-empty").hidden = groups.length > 0;
}

pageSize.addEventListener("change", () => {
  void groupsPager.go({}, 0);
  if (selected) void membersPager.go({}, 0);
});
$("groups-reload").addEventListener("click", () => void reloadGroups());

$("group-create").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $<HTMLInputElement>("group-create-name");
  const description = $<HTMLInputElement>("group-create-description");
  void act("Create group", async () => {
    const { group } = await api.groups.createGroup({
      organizationId,
      name: name.value,
      description: description.value,
      // Lets the SDK retry UNAVAILABLE safely: the server deduplicates by it.
      requestId: crypto.randomUUID(),
    });
    name.value = "";
    description.value = "";
    await groupsPager.go({}, 0);
    if (group) selectGroup(group);
    return `Created group “${group?.name}” (${group?.id}).`;
  });
});

// ---------------------------------------------------------------------------
// One group: rename, delete, members
// ---------------------------------------------------------------------------

const editName = $<HTMLInputElement>("group-edit-name");
const editDescription = $<HTMLInputElement>("group-edit-description");
const membersBody = $("members-body");

function selectGroup(g: Group | undefined): void {
  const changed = g?.id !== selected?.id;
  selected = g;
  $("group-panel").hidden = !g;
  askDelete(false);
  for (const row of groupsBody.querySelectorAll<HTMLElement>("tr")) {
    row.classList.toggle("selected", row.dataset.groupId === g?.id);
  }
  if (!g) return;
  showGroup(g);
  if (changed) {
    $<HTMLInputElement>("member-add-input").value = "";
    membersBody.replaceChildren();
    void membersPager.go({}, 0);
  }
}

/** Shows the group's fields; each response that carries the group refreshes them (and its etag). */
function showGroup(g: Group): void {
  selected = g;
  $("group-title").textContent = `“${g.name}”`;
  $("group-id").textContent = g.id;
  $("group-count").textContent = String(g.memberCount);
  editName.value = g.name;
  editDescription.value = g.description;
}

$("group-edit").addEventListener("submit", (e) => {
  e.preventDefault();
  const g = selected;
  if (!g) return;
  void act("Update group", async () => {
    const name = editName.value === g.name ? undefined : editName.value;
    const description = editDescription.value === g.description ? undefined : editDescription.value;
    if (name === undefined && description === undefined) return "Nothing to change.";
    const { group } = await api.groups.updateGroup({
      organizationId,
      groupId: g.id,
      name,
      description,
      // Refuses (ABORTED, ETAG_MISMATCH) if someone changed it since it was shown.
      etag: g.etag,
    });
    if (group) showGroup(group);
    await reloadGroups();
    return `Saved group “${group?.name}”.`;
  });
});

function askDelete(ask: boolean): void {
  $("group-delete").hidden = ask;
  $("group-delete-ask").hidden = !ask;
}

$("group-delete").addEventListener("click", () => askDelete(true));
$("group-delete-cancel").addEventListener("click", () => askDelete(false));
$("group-delete-confirm").addEventListener("click", () => {
  const g = selected;
  if (!g) return;
  void act("Delete group", async () => {
    await api.groups.deleteGroup({ organizationId, groupId: g.id, etag: g.etag });
    selectGroup(undefined);
    await reloadGroups();
    return `Deleted group “${g.name}” (${g.id}).`;
  });
});

const membersPager = new Pager(
  $<HTMLButtonElement>("members-prev"),
  $<HTMLButtonElement>("members-next"),
  $("members-page"),
  (c) => loadMembers(c),
);

async function loadMembers(cursor: Cursor): Promise<void> {
  const g = selected;
  if (!g) return;
  await act("List members", async () => {
    const r = await api.groups.listGroupMembers({
      organizationId,
      groupId: g.id,
      limit: limit(),
      ...cursor,
    });
    if (g.id !== selected?.id) return;
    membersPager.shown(cursor, r.listMetadata, r.organizationMemberships.length);
    renderMembers(r.organizationMemberships);
  });
}

function renderMembers(members: OrganizationMembership[]): void {
  membersBody.replaceChildren(
    ...members.map((m) => {
      const remove = h("button", { type: "button", "data-testid": "member-remove" }, "Remove");
      remove.addEventListener("click", () => removeMember(m));
      return h(
        "tr",
        { "data-testid": "member-row", "data-membership-id": m.id },
        h("td", {}, h("code", {}, m.id)),
        h("td", { "data-testid": "member-user" }, m.userId),
        h("td", {}, statusName(m.status)),
        h("td", {}, remove),
      );
    }),
  );
  $("members-empty").hidden = members.length > 0;
}

async function afterMemberChange(group: Group | undefined): Promise<void> {
  if (group) showGroup(group);
  await loadMembers(membersPager.current);
  await reloadGroups();
}

$("member-add").addEventListener("submit", (e) => {
  e.preventDefault();
  const g = selected;
  if (!g) return;
  const input = $<HTMLInputElement>("member-add-input");
  const id = input.value.trim();
  void act("Add member", async () => {
    const r = await api.groups.addGroupMember({
      organizationId,
      groupId: g.id,
      organizationMembershipId: id,
    });
    input.value = "";
    await afterMemberChange(r.group);
    return r.added ? `Added ${id} to “${g.name}”.` : `${id} was already a member of “${g.name}”.`;
  });
});

function removeMember(m: OrganizationMembership): void {
  const g = selected;
  if (!g) return;
  void act("Remove member", async () => {
    const r = await api.groups.removeGroupMember({
      organizationId,
      groupId: g.id,
      organizationMembershipId: m.id,
    });
    await afterMemberChange(r.group);
    return `Removed ${m.id} (${m.userId}) from “${g.name}”.`;
  });
}

// ---------------------------------------------------------------------------
// Events: the last hour (ListEvents), then live (StreamEvents) after the last one
// ---------------------------------------------------------------------------

const eventsList = $("events");
const eventsStatus = $("events-status");
let following: AbortController | undefined;

/** Codes after which the stream is opened again (from the last event seen, so nothing is missed). */
const TRANSIENT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal]);

function stopEvents(): void {
  following?.abort();
  following = undefined;
  eventsStatus.textContent = "(pick an organization)";
}

function showEvent(e: Event): void {
  const parts: Child[] = [
    h(
      "time",
      { datetime: e.createdAt ? timestampDate(e.createdAt).toISOString() : "" },
      utc(e.createdAt),
    ),
    h("span", { class: "type", "data-testid": "event-type" }, e.type),
    " ",
  ];
  if (e.data.case === "group") {
    const g = e.data.value.group;
    parts.push(`“${g?.name ?? ""}” `, h("code", {}, g?.id ?? ""));
    const prev = e.data.value.previous;
    if (prev?.name !== undefined) parts.push(` (was “${prev.name}”)`);
  } else if (e.data.case === "member") {
    const m = e.data.value;
    parts.push(h("code", {}, m.organizationMembershipId), ` (${m.userId}) `);
    parts.push(e.type.endsWith("added") ? "→ " : "✕ ", h("code", {}, m.groupId));
  }
  eventsList.prepend(
    h("li", { "data-testid": "event", "data-event-type": e.type, "data-event-id": e.id }, ...parts),
  );
  while (eventsList.childElementCount > MAX_EVENTS) eventsList.lastElementChild?.remove();
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}

async function followEvents(org: string): Promise<void> {
  following?.abort();
  const ctl = new AbortController();
  following = ctl;
  const { signal } = ctl;
  eventsList.replaceChildren();
  eventsStatus.textContent = "(loading)";
  let after = "";
  try {
    const rangeStart = timestampFromDate(new Date(Date.now() - HISTORY_MS));
    for (let page = 0; page < 5; page++) {
      const r = await api.events.listEvents(
        { organizationId: org, rangeStart, after, limit: 1000 },
        { signal },
      );
      r.events.forEach(showEvent);
      if (r.events.length > 0) after = r.events[r.events.length - 1].id;
      if (!r.listMetadata?.after) break;
    }
  } catch (err) {
    if (signal.aborted) return;
    const d = errorDetails(err);
    eventsStatus.textContent = `(history failed: ${codeName(d.codeName)} ${d.message} ${d.reason})`;
    if (!TRANSIENT.has(d.code)) return;
  }
  let delayMs = 1000;
  while (!signal.aborted) {
    eventsStatus.textContent = "(live)";
    try {
      // No deadline: the stream stays open until the page leaves the organization.
      for await (const { event } of api.events.streamEvents(
        { organizationId: org, after },
        { signal, timeoutMs: 0 },
      )) {
        if (!event) continue;
        showEvent(event);
        after = event.id;
        delayMs = 1000;
      }
    } catch (err) {
      if (signal.aborted) return;
      const d = errorDetails(err);
      const said = `${codeName(d.codeName)}: ${d.message}${d.reason ? ` (${d.reason})` : ""}`;
      if (!TRANSIENT.has(d.code)) {
        eventsStatus.textContent = `(stopped — ${said})`;
        return;
      }
      eventsStatus.textContent = `(reconnecting in ${delayMs / 1000} s — ${said})`;
    }
    // The server ended the stream (e.g. it is shutting down) or it failed: resume after the last event.
    await wait(delayMs, signal);
    delayMs = Math.min(delayMs * 2, 15_000);
  }
}

$("events-clear").addEventListener("click", () => eventsList.replaceChildren());

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

showTokenState();
if (token) void loadOrganizations({});
