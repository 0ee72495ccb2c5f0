/**
 * A mixed write load for the fault tests, with the events it must produce.
 *
 * Each worker owns an organization: its groups are written by it alone, one
 * call after another, so their expected events are known exactly and in order.
 * All workers also add and remove members of two shared groups concurrently:
 * expected there are the events the responses announced (plus, where calls may
 * be cut off, possibly those of the cut-off calls), and per membership a strict
 * added/removed alternation in stream order.
 */
import { groupKey, memberKey } from "./faults.js";
import type { Clients } from "./server.js";
import { waitFor } from "./wait.js";
import { rng } from "./rng.js";

export interface CallOptions {
  onFailure: "retry" | "uncertain";
  /** On a retry, NOT_FOUND means the first attempt committed (e.g. a delete). */
  notFoundOnRetryOk?: boolean;
}

export interface Outcome<T> {
  /** Undefined when the call failed and was not retried. */
  value?: T;
  /** The call failed on a replica that went away and was made again elsewhere. */
  retried: boolean;
  /** The call failed and was not retried: it may or may not have committed. */
  uncertain: boolean;
}

/** How the workload reaches the service. */
export interface Caller {
  call<T>(fn: (c: Clients) => Promise<T>, opts: CallOptions): Promise<Outcome<T>>;
}

/** Every call straight to one service: any failure is an error. */
export function directCaller(conn: Clients): Caller {
  return {
    async call(fn) {
      return { value: await fn(conn), retried: false, uncertain: false };
    },
  };
}

interface OwnedGroup {
  id: string;
  name: string;
  description: string;
  members: Set<string>;
}

export interface WorkloadOptions {
  /** Workers writing at once. */
  workers: number;
  /** Worker `w` draws its choices from `rng(seed + w)`. */
  seed: number;
  /** Memberships each worker creates in its organization. */
  membersPerWorker: number;
  /** Memberships of the shared organization. */
  sharedMembers: number;
  /** Weight of deleting a membership (member_removed, cause system, from its groups); 0: never. */
  deleteMembershipWeight: number;
  /** Weight of a write to the shared groups. */
  sharedWeight: number;
}

export class Workload {
  /** Groups written by one worker only: their events, transaction by transaction, in order. */
  readonly owned = new Map<string, string[][]>();
  /** Shared groups: the events the responses announced (any order). */
  readonly shared = new Map<string, string[]>();
  /** Shared groups: events of calls cut off (each may or may not exist). */
  readonly maybe = new Map<string, string[]>();
  /** Organization of every group written. */
  readonly orgOf = new Map<string, string>();
  writes = 0;
  noops = 0;
  readonly anomalies: string[] = [];
  readonly errors: string[] = [];
  sharedOrg = "";
  sharedGroups: string[] = [];
  sharedMembers: string[] = [];

  constructor(
    private readonly caller: Caller,
    private readonly opts: WorkloadOptions,
    private readonly done: () => boolean,
  ) {}

  private async write<T>(
    fn: (c: Clients) => Promise<T>,
    opts: CallOptions = { onFailure: "retry" },
  ): Promise<Outcome<T>> {
    const outcome = await this.caller.call(fn, opts);
    this.writes++;
    return outcome;
  }

  async setupShared(): Promise<void> {
    const { value } = await this.write((c) => c.orgs.createOrganization({ name: "shared" }));
    this.sharedOrg = value!.organization!.id;
    for (let i = 0; i < 2; i++) {
      const created = await this.write((c) =>
        c.groups.createGroup({
          organizationId: this.sharedOrg,
          name: `shared-${i}`,
          requestId: `shared-${i}`,
        }),
      );
      const g = created.value!.group!.id;
      this.sharedGroups.push(g);
      this.orgOf.set(g, this.sharedOrg);
      this.shared.set(g, [
        groupKey("group.created", { name: `shared-${i}`, description: "" }, "api"),
      ]);
      this.maybe.set(g, []);
    }
    for (let i = 0; i < this.opts.sharedMembers; i++) {
      const m = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: this.sharedOrg, userId: `s${i}` }),
      );
      this.sharedMembers.push(m.value!.organizationMembership!.id);
    }
  }

  /** Starts every worker; resolves when they have all stopped (`done`, or an error). */
  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.workers }, (_, w) => this.worker(w)));
  }

  /** Resolves once `n` writes are done (or a worker failed). */
  async firstWrites(n: number): Promise<void> {
    await waitFor(
      "the first writes",
      async () => (this.writes >= n || this.errors.length > 0 ? true : undefined),
      60_000,
    );
  }

  private async worker(w: number): Promise<void> {
    try {
      await this.runWorker(w);
    } catch (err) {
      this.errors.push(`worker ${w} after ${this.writes} writes: ${String(err)}`);
    }
  }

  /** How many events the announced changes make (cut-off calls not counted). */
  expectedTotal(): number {
    let total = 0;
    for (const txs of this.owned.values()) for (const keys of txs) total += keys.length;
    for (const keys of this.shared.values()) total += keys.length;
    return total;
  }

  private async runWorker(w: number): Promise<void> {
    const rand = rng(this.opts.seed + w);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const pickSome = <T>(xs: T[], n: number): T[] => {
      const copy = [...xs];
      const out: T[] = [];
      while (out.length < n && copy.length > 0) {
        out.push(copy.splice(Math.floor(rand() * copy.length), 1)[0]);
      }
      return out;
    };
    const anomaly = (what: string) => this.anomalies.push(`worker ${w}: ${what}`);

    const orgCreated = await this.write((c) => c.orgs.createOrganization({ name: `w${w}` }));
    const org = orgCreated.value!.organization!.id;
    const members: string[] = [];
    let users = 0;
    const newMembership = async () => {
      const m = await this.write((c) =>
        c.orgs.createOrganizationMembership({ organizationId: org, userId: `u${w}-${users++}` }),
      );
      members.push(m.value!.organizationMembership!.id);
    };
    for (let i = 0; i < this.opts.membersPerWorker; i++) await newMembership();

    const groups: OwnedGroup[] = [];
    const created: { requestId: string; id: string; name: string; description: string }[] = [];
    let n = 0;
    const expectEvents = (g: OwnedGroup, keys: string[]) => {
      if (keys.length > 0) this.owned.get(g.id)!.push(keys);
      else this.noops++;
    };

    const createGroup = async () => {
      const k = n++;
      const name = `g${w}-${k}`;
      const description = k % 2 === 0 ? "" : `about ${k}`;
      const requestId = `rq-${w}-${k}`;
      // Safe to retry: the request_id makes a repeat return the group the first call created.
      const { value } = await this.write((c) =>
        c.groups.createGroup({ organizationId: org, name, description, requestId }),
      );
      const g: OwnedGroup = { id: value!.group!.id, name, description, members: new Set() };
      this.owned.set(g.id, []);
      this.orgOf.set(g.id, org);
      expectEvents(g, [groupKey("group.created", g, "api")]);
      groups.push(g);
      created.push({ requestId, id: g.id, name, description });
    };
    for (let i = 0; i < 3; i++) await createGroup();

    const ops: [number, () => Promise<void>][] = [
      [
        26, // add one member (a no-op when already a member)
        async () => {
          const g = pick(groups);
          const m = pick(members);
          const { value, retried } = await this.write((c) =>
            c.groups.addGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
            }),
          );
          const was = g.members.has(m);
          if (!retried && value!.added === was) {
            anomaly(`addGroupMember(${g.id}, ${m}).added = ${value!.added}`);
          }
          g.members.add(m);
          expectEvents(g, was ? [] : [memberKey("group.member_added", m, "api")]);
        },
      ],
      [
        18, // remove one member, allow_missing (a no-op when not a member)
        async () => {
          const g = pick(groups);
          const m = pick(members);
          const { value, retried } = await this.write((c) =>
            c.groups.removeGroupMember({
              organizationId: org,
              groupId: g.id,
              organizationMembershipId: m,
              allowMissing: true,
            }),
          );
          const was = g.members.has(m);
          if (!retried && value!.removed !== was) {
            anomaly(`removeGroupMember(${g.id}, ${m}).removed = ${value!.removed}`);
          }
          g.members.delete(m);
          expectEvents(g, was ? [memberKey("group.member_removed", m, "api")] : []);
        },
      ],
      [
        7, // batch add
        async () => {
          const g = pick(groups);
          const ids = pickSome(members, 3);
          const { value, retried } = await this.write((c) =>
            c.groups.batchAddGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const fresh = ids.filter((m) => !g.members.has(m));
          const added = value!.results
            .filter((r) => r.added)
            .map((r) => r.organizationMembershipId);
          if (!retried && [...added].sort().join() !== [...fresh].sort().join()) {
            anomaly(`batchAdd(${g.id}) added ${added.join()} expected ${fresh.join()}`);
          }
          for (const m of fresh) g.members.add(m);
          expectEvents(
            g,
            fresh.map((m) => memberKey("group.member_added", m, "api")),
          );
        },
      ],
      [
        5, // batch remove
        async () => {
          const g = pick(groups);
          const ids = pickSome(members, 3).filter((m) => g.members.has(m) || rand() < 0.3);
          if (ids.length === 0) return;
          const { value, retried } = await this.write((c) =>
            c.groups.batchRemoveGroupMembers({
              organizationId: org,
              groupId: g.id,
              organizationMembershipIds: ids,
            }),
          );
          const gone = ids.filter((m) => g.members.has(m));
          const removed = value!.results
            .filter((r) => r.removed)
            .map((r) => r.organizationMembershipId);
          if (!retried && [...removed].sort().join() !== [...gone].sort().join()) {
            anomaly(`batchRemove(${g.id}) removed ${removed.join()} expected ${gone.join()}`);
          }
          for (const m of gone) g.members.delete(m);
          expectEvents(
            g,
            gone.map((m) => memberKey("group.member_removed", m, "api")),
          );
        },
      ],
      [
        10, // update: a third of them change nothing
        async () => {
          const g = pick(groups);
          const r = rand();
          const k = n++;
          const req =
            r < 0.33
              ? { name: g.name } // no-op
              : r < 0.66
                ? { name: `${g.name.split("~")[0]}~${k}` }
                : { description: g.description === "" ? `d${k}` : "" };
          const { value } = await this.write((c) =>
            c.groups.updateGroup({ organizationId: org, groupId: g.id, ...req }),
          );
          const before = { name: g.name, description: g.description };
          if (req.name !== undefined) g.name = req.name;
          if (req.description !== undefined) g.description = req.description;
          if (value!.group?.name !== g.name || value!.group?.description !== g.description) {
            anomaly(
              `updateGroup(${g.id}) returned ${value!.group?.name}/${value!.group?.description}`,
            );
          }
          const changed = before.name !== g.name || before.description !== g.description;
          expectEvents(g, changed ? [groupKey("group.updated", g, "api")] : []);
        },
      ],
      [4, createGroup],
      [
        4, // CreateGroup replayed with a used request_id: same group, no event
        async () => {
          const c0 = pick(created);
          const { value } = await this.write((c) =>
            c.groups.createGroup({
              organizationId: org,
              name: c0.name,
              description: c0.description,
              requestId: c0.requestId,
            }),
          );
          if (value!.group?.id !== c0.id) {
            anomaly(`replayed ${c0.requestId} gave ${value!.group?.id}, not ${c0.id}`);
          }
          this.noops++;
        },
      ],
      [
        2, // delete a group
        async () => {
          if (groups.length <= 3) return;
          const g = groups.splice(Math.floor(rand() * groups.length), 1)[0];
          await this.write((c) => c.groups.deleteGroup({ organizationId: org, groupId: g.id }), {
            onFailure: "retry",
            notFoundOnRetryOk: true,
          });
          expectEvents(g, [groupKey("group.deleted", g, "api")]);
        },
      ],
      [
        this.opts.deleteMembershipWeight, // delete a membership: member_removed (system) from every live group it was in
        async () => {
          if (members.length <= 4) return;
          const m = members.splice(Math.floor(rand() * members.length), 1)[0];
          await this.write(
            (c) => c.orgs.deleteOrganizationMembership({ organizationMembershipId: m }),
            { onFailure: "retry", notFoundOnRetryOk: true },
          );
          for (const g of groups) {
            if (g.members.delete(m)) {
              this.owned.get(g.id)!.push([memberKey("group.member_removed", m, "system")]);
            }
          }
          await newMembership();
        },
      ],
      [
        this.opts.sharedWeight, // shared groups, written by every worker at once
        async () => {
          const g = pick(this.sharedGroups);
          const m = pick(this.sharedMembers);
          const ref = { organizationId: this.sharedOrg, groupId: g, organizationMembershipId: m };
          const uncertain = { onFailure: "uncertain" } as const;
          if (rand() < 0.55) {
            const { value } = await this.write((c) => c.groups.addGroupMember(ref), uncertain);
            const key = memberKey("group.member_added", m, "api");
            if (!value) this.maybe.get(g)!.push(key);
            else if (value.added) this.shared.get(g)!.push(key);
            else this.noops++;
          } else {
            const { value } = await this.write(
              (c) => c.groups.removeGroupMember({ ...ref, allowMissing: true }),
              uncertain,
            );
            const key = memberKey("group.member_removed", m, "api");
            if (!value) this.maybe.get(g)!.push(key);
            else if (value.removed) this.shared.get(g)!.push(key);
            else this.noops++;
          }
        },
      ],
    ];
    const totalWeight = ops.reduce((s, [wt]) => s + wt, 0);
    while (!this.done() && this.errors.length === 0) {
      let r = rand() * totalWeight;
      const op = ops.find(([wt]) => (r -= wt) < 0)?.[1] ?? ops[0][1];
      await op();
    }
  }
}
