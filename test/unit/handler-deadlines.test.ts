import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GroupsService } from "../../clients/src/gen/groups/v1/groups_pb.js";
import { OrganizationsService } from "../../clients/src/gen/groups/v1/organizations_pb.js";
import { CallDeadline } from "../../server/src/domain/deadline.js";
import type { Groups } from "../../server/src/domain/groups.js";
import type { Memberships } from "../../server/src/domain/memberships.js";
import type { Organizations } from "../../server/src/domain/organizations.js";
import { groupsHandlers } from "../../server/src/rpc/groups-service.js";
import { organizationsHandlers } from "../../server/src/rpc/organizations-service.js";
import type { CallContext } from "../../server/src/rpc/pipeline.js";

/**
 * A call's deadline reaches the domain by hand (CallContext.deadline), so a
 * handler that forgot it would compile and then commit past its deadline.
 * Every RPC that writes, or reads through a shared statement that drops
 * callers whose time ran out, must hand its call's deadline on; the rest
 * read once and are raced by the pipeline. A new RPC fails here until it is
 * put in one list or the other.
 */
const PASSES_DEADLINE = [
  "GroupsService.createGroup",
  "GroupsService.updateGroup",
  "GroupsService.deleteGroup",
  "GroupsService.addGroupMember",
  "GroupsService.removeGroupMember",
  "GroupsService.batchAddGroupMembers",
  "GroupsService.batchRemoveGroupMembers",
  "GroupsService.getGroup",
  "GroupsService.checkGroupMembership",
  "GroupsService.listGroupsForOrganizationMembership",
  "OrganizationsService.createOrganization",
  "OrganizationsService.updateOrganization",
  "OrganizationsService.deleteOrganization",
  "OrganizationsService.createOrganizationMembership",
  "OrganizationsService.updateOrganizationMembership",
  "OrganizationsService.deleteOrganizationMembership",
];
const READS_ONCE = [
  "GroupsService.listGroups",
  "GroupsService.listGroupMembers",
  "OrganizationsService.getOrganization",
  "OrganizationsService.listOrganizations",
  "OrganizationsService.getOrganizationMembership",
  "OrganizationsService.listOrganizationMemberships",
];

/** Stops the handler right after the domain call, whose arguments it records. */
class Recorded extends Error {}

/** A stand-in for a domain object: every method records its arguments, then throws Recorded. */
function recordingDomain<T>(calls: unknown[][]): T {
  return new Proxy(
    {},
    {
      get:
        () =>
        (...args: unknown[]) => {
          calls.push(args);
          return Promise.reject(new Recorded());
        },
    },
  ) as T;
}

describe("handlers hand the call's deadline to the domain", () => {
  const deadline = new CallDeadline(new AbortController().signal, performance.now() + 60_000);
  const services = [
    {
      service: GroupsService,
      handlers: (calls: unknown[][]) => groupsHandlers(recordingDomain<Groups>(calls)),
    },
    {
      service: OrganizationsService,
      handlers: (calls: unknown[][]) =>
        organizationsHandlers(
          recordingDomain<Organizations>(calls),
          recordingDomain<Memberships>(calls),
        ),
    },
  ];
  const methods = services.flatMap(({ service, handlers }) =>
    service.methods.map((method) => ({
      name: `${service.name}.${method.localName}`,
      method,
      handlers,
    })),
  );

  it("every RPC is in exactly one of the two lists", () => {
    expect(methods.map((m) => m.name).sort()).toEqual([...PASSES_DEADLINE, ...READS_ONCE].sort());
  });

  it.each(methods.filter((m) => PASSES_DEADLINE.includes(m.name)).map((m) => [m.name, m] as const))(
    "%s passes ctx.deadline",
    async (_, { method, handlers }) => {
      const calls: unknown[][] = [];
      const handler = (handlers(calls) as Record<string, unknown>)[method.localName] as (
        req: unknown,
        ctx: CallContext,
      ) => Promise<unknown>;
      const ctx = { deadline } as unknown as CallContext;
      await expect(handler(create(method.input), ctx)).rejects.toBeInstanceOf(Recorded);
      expect(calls).toHaveLength(1);
      expect(calls[0].at(-1)).toBe(deadline);
    },
  );
});
