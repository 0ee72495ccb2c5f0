/**
 * `groups` — a command line for the Groups service (organizations, memberships,
 * groups, members, events). Address and token come from flags or the
 * environment: GROUPS_ADDRESS (default http://127.0.0.1:50051, gRPC), GROUPS_TOKEN
 * (default: the embedded default's ./data/api-key when it exists).
 */
import { existsSync, readFileSync } from "node:fs";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Command, Option } from "commander";
import { Order } from "./gen/groups/v1/common_pb.js";
import { OrganizationMembershipStatus } from "./gen/groups/v1/organizations_pb.js";
import { errorDetails } from "./sdk/errors.js";
import { createNodeClients } from "./sdk/node.js";
import type { GroupsClients } from "./sdk/clients.js";

const program = new Command("groups")
  .description("Call the Groups service")
  .option(
    "--address <url>",
    "service URL (gRPC port, or PORT with --protocol connect)",
    process.env.GROUPS_ADDRESS ?? "http://127.0.0.1:50051",
  )
  .addOption(
    new Option("--protocol <p>", "wire protocol")
      .choices(["grpc", "connect"])
      .default(process.env.GROUPS_PROTOCOL ?? "grpc"),
  )
  .option("--token <token>", "API key or access token (env GROUPS_TOKEN)")
  .option("--json", "print responses as protobuf JSON");

function clients(): GroupsClients {
  const o = program.opts<{ address: string; protocol: "grpc" | "connect"; token?: string }>();
  const token =
    o.token ??
    process.env.GROUPS_TOKEN ??
    (existsSync("data/api-key") ? readFileSync("data/api-key", "utf8").trim() : undefined);
  return createNodeClients({ baseUrl: o.address, protocol: o.protocol, token });
}

const time = (t?: Timestamp) => (t ? timestampDate(t).toISOString() : "");

/** Prints a response: JSON with --json, else one line per object. */
function print<D extends DescMessage>(
  schema: D,
  res: MessageShape<D>,
  lines: () => string[],
): void {
  if (program.opts().json) console.log(JSON.stringify(toJson(schema, res), null, 2));
  else for (const l of lines()) console.log(l);
}

const page = (c: Command) =>
  c
    .option("--limit <n>", "page size (1-1000)", (v) => Number(v), 0)
    .option("--after <id>", "cursor: the page after this id", "")
    .option("--before <id>", "cursor: the page before this id", "")
    .option("--asc", "oldest first");
const pageArgs = (o: { limit: number; after: string; before: string; asc?: boolean }) => ({
  limit: o.limit,
  after: o.after,
  before: o.before,
  order: o.asc ? Order.ASC : Order.DESC,
});
const more = (m?: { after: string }) => (m?.after ? [`(more: --after ${m.after})`] : []);

/** Wraps an action: errors print the service's code, reason and bad fields, exit 1. */
const run =
  <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const d = errorDetails(err);
      console.error(`error: ${d.codeName}${d.reason ? ` ${d.reason}` : ""}: ${d.message}`);
      for (const v of d.fieldViolations) console.error(`  ${v.field}: ${v.description}`);
      process.exitCode = 1;
    }
  };

const orgs = program.command("orgs").description("organizations");
orgs
  .command("create <name>")
  .option("--external-id <id>", "", "")
  .action(
    run(async (name: string, o: { externalId: string }) => {
      const res = await clients().organizations.createOrganization({
        name,
        externalId: o.externalId,
      });
      print(
        (await import("./gen/groups/v1/organizations_pb.js")).CreateOrganizationResponseSchema,
        res,
        () => [`${res.organization!.id}  ${res.organization!.name}`],
      );
    }),
  );
page(orgs.command("list")).action(
  run(async (o) => {
    const res = await clients().organizations.listOrganizations(pageArgs(o));
    const { ListOrganizationsResponseSchema } = await import("./gen/groups/v1/organizations_pb.js");
    print(ListOrganizationsResponseSchema, res, () => [
      ...res.organizations.map((x) => `${x.id}  ${x.name}  ${x.externalId}`),
      ...more(res.listMetadata),
    ]);
  }),
);
orgs.command("get <organization_id>").action(
  run(async (id: string) => {
    const res = await clients().organizations.getOrganization({ organizationId: id });
    const { GetOrganizationResponseSchema } = await import("./gen/groups/v1/organizations_pb.js");
    print(GetOrganizationResponseSchema, res, () => [
      `${res.organization!.id}  ${res.organization!.name}  created ${time(res.organization!.createdAt)}`,
    ]);
  }),
);
orgs
  .command("update <organization_id>")
  .option("--name <name>")
  .option("--external-id <id>")
  .action(
    run(async (id: string, o: { name?: string; externalId?: string }) => {
      const res = await clients().organizations.updateOrganization({
        organizationId: id,
        name: o.name,
        externalId: o.externalId,
      });
      const { UpdateOrganizationResponseSchema } =
        await import("./gen/groups/v1/organizations_pb.js");
      print(UpdateOrganizationResponseSchema, res, () => [
        `${res.organization!.id}  ${res.organization!.name}`,
      ]);
    }),
  );
orgs.command("delete <organization_id>").action(
  run(async (id: string) => {
    await clients().organizations.deleteOrganization({ organizationId: id });
    console.log(`deleted ${id}`);
  }),
);

const STATUS: Record<string, OrganizationMembershipStatus> = {
  active: OrganizationMembershipStatus.ACTIVE,
  inactive: OrganizationMembershipStatus.INACTIVE,
  pending: OrganizationMembershipStatus.PENDING,
};
const statusName = (s: OrganizationMembershipStatus) =>
  Object.keys(STATUS).find((k) => STATUS[k] === s) ?? "?";

const members = program.command("memberships").description("organization memberships");
members
  .command("create <organization_id> <user_id>")
  .addOption(new Option("--status <s>").choices(Object.keys(STATUS)).default("active"))
  .action(
    run(async (org: string, user: string, o: { status: string }) => {
      const res = await clients().organizations.createOrganizationMembership({
        organizationId: org,
        userId: user,
        status: STATUS[o.status],
      });
      const { CreateOrganizationMembershipResponseSchema } =
        await import("./gen/groups/v1/organizations_pb.js");
      print(CreateOrganizationMembershipResponseSchema, res, () => [
        `${res.organizationMembership!.id}  ${user}  ${o.status}`,
      ]);
    }),
  );
page(
  members.command("list").option("--organization <id>", "", "").option("--user <id>", "", ""),
).action(
  run(async (o) => {
    const res = await clients().organizations.listOrganizationMemberships({
      organizationId: o.organization,
      userId: o.user,
      ...pageArgs(o),
    });
    const { ListOrganizationMembershipsResponseSchema } =
      await import("./gen/groups/v1/organizations_pb.js");
    print(ListOrganizationMembershipsResponseSchema, res, () => [
      ...res.organizationMemberships.map(
        (m) => `${m.id}  ${m.organizationId}  ${m.userId}  ${statusName(m.status)}`,
      ),
      ...more(res.listMetadata),
    ]);
  }),
);
members.command("get <organization_membership_id>").action(
  run(async (id: string) => {
    const res = await clients().organizations.getOrganizationMembership({
      organizationMembershipId: id,
    });
    const { GetOrganizationMembershipResponseSchema } =
      await import("./gen/groups/v1/organizations_pb.js");
    const m = res.organizationMembership!;
    print(GetOrganizationMembershipResponseSchema, res, () => [
      `${m.id}  ${m.organizationId}  ${m.userId}  ${statusName(m.status)}`,
    ]);
  }),
);
members
  .command("update <organization_membership_id>")
  .addOption(new Option("--status <s>").choices(Object.keys(STATUS)).makeOptionMandatory())
  .action(
    run(async (id: string, o: { status: string }) => {
      const res = await clients().organizations.updateOrganizationMembership({
        organizationMembershipId: id,
        status: STATUS[o.status],
      });
      const { UpdateOrganizationMembershipResponseSchema } =
        await import("./gen/groups/v1/organizations_pb.js");
      print(UpdateOrganizationMembershipResponseSchema, res, () => [`${id}  ${o.status}`]);
    }),
  );
members.command("delete <organization_membership_id>").action(
  run(async (id: string) => {
    await clients().organizations.deleteOrganizationMembership({ organizationMembershipId: id });
    console.log(`deleted ${id}`);
  }),
);

const G = () => import("./gen/groups/v1/groups_pb.js");
const groupLine = (g: {
  id: string;
  name: string;
  memberCount: bigint;
  etag: string;
  description: string;
}) =>
  `${g.id}  ${g.name}  members=${g.memberCount}  etag=${g.etag}${g.description ? `  "${g.description}"` : ""}`;

const groups = program.command("groups").description("groups and their members");
groups
  .command("create <organization_id> <name>")
  .option("--description <text>", "", "")
  .option("--request-id <id>", "idempotency key", "")
  .action(
    run(async (org: string, name: string, o: { description: string; requestId: string }) => {
      const res = await clients().groups.createGroup({
        organizationId: org,
        name,
        description: o.description,
        requestId: o.requestId,
      });
      print((await G()).CreateGroupResponseSchema, res, () => [groupLine(res.group!)]);
    }),
  );
groups.command("get <organization_id> <group_id>").action(
  run(async (org: string, id: string) => {
    const res = await clients().groups.getGroup({ organizationId: org, groupId: id });
    print((await G()).GetGroupResponseSchema, res, () => [groupLine(res.group!)]);
  }),
);
page(groups.command("list <organization_id>")).action(
  run(async (org: string, o) => {
    const res = await clients().groups.listGroups({ organizationId: org, ...pageArgs(o) });
    print((await G()).ListGroupsResponseSchema, res, () => [
      ...res.groups.map(groupLine),
      ...more(res.listMetadata),
    ]);
  }),
);
groups
  .command("update <organization_id> <group_id>")
  .option("--name <name>")
  .option("--description <text>", 'new description ("" clears it)')
  .option("--etag <etag>", "only if unchanged since this etag", "")
  .action(
    run(
      async (org: string, id: string, o: { name?: string; description?: string; etag: string }) => {
        const res = await clients().groups.updateGroup({
          organizationId: org,
          groupId: id,
          name: o.name,
          description: o.description,
          etag: o.etag,
        });
        print((await G()).UpdateGroupResponseSchema, res, () => [groupLine(res.group!)]);
      },
    ),
  );
groups
  .command("delete <organization_id> <group_id>")
  .option("--etag <etag>", "", "")
  .action(
    run(async (org: string, id: string, o: { etag: string }) => {
      await clients().groups.deleteGroup({ organizationId: org, groupId: id, etag: o.etag });
      console.log(`deleted ${id}`);
    }),
  );
groups.command("add <organization_id> <group_id> <organization_membership_id>").action(
  run(async (org: string, id: string, om: string) => {
    const res = await clients().groups.addGroupMember({
      organizationId: org,
      groupId: id,
      organizationMembershipId: om,
    });
    print((await G()).AddGroupMemberResponseSchema, res, () => [
      `${res.added ? "added" : "already a member"}; ${groupLine(res.group!)}`,
    ]);
  }),
);
groups
  .command("remove <organization_id> <group_id> <organization_membership_id>")
  .option("--allow-missing", "not a member is fine")
  .action(
    run(async (org: string, id: string, om: string, o: { allowMissing?: boolean }) => {
      const res = await clients().groups.removeGroupMember({
        organizationId: org,
        groupId: id,
        organizationMembershipId: om,
        allowMissing: !!o.allowMissing,
      });
      print((await G()).RemoveGroupMemberResponseSchema, res, () => [
        `${res.removed ? "removed" : "was not a member"}; ${groupLine(res.group!)}`,
      ]);
    }),
  );
page(groups.command("members <organization_id> <group_id>")).action(
  run(async (org: string, id: string, o) => {
    const res = await clients().groups.listGroupMembers({
      organizationId: org,
      groupId: id,
      ...pageArgs(o),
    });
    print((await G()).ListGroupMembersResponseSchema, res, () => [
      ...res.organizationMemberships.map((m) => `${m.id}  ${m.userId}  ${statusName(m.status)}`),
      ...more(res.listMetadata),
    ]);
  }),
);

const events = program.command("events").description("group.* events");
events
  .command("list")
  .option("--organization <id>", "", "")
  .option("--type <type...>", "only these types", [])
  .option("--after <event_id>", "the page after this event", "")
  .option("--limit <n>", "page size (1-1000)", (v) => Number(v), 100)
  .action(
    run(async (o: { organization: string; type: string[]; after: string; limit: number }) => {
      const res = await clients().events.listEvents({
        organizationId: o.organization,
        types: o.type,
        after: o.after,
        limit: o.limit,
      });
      const { ListEventsResponseSchema } = await import("./gen/groups/v1/events_pb.js");
      print(ListEventsResponseSchema, res, () => [
        ...res.events.map((e) => `#${e.sequence}  ${time(e.createdAt)}  ${e.type}  ${e.id}`),
        ...more(res.listMetadata),
      ]);
    }),
  );
events
  .command("tail")
  .option("--organization <id>", "", "")
  .option("--type <type...>", "only these types", [])
  .option("--after <event_id>", "replay from just after this event", "")
  .action(
    run(async (o: { organization: string; type: string[]; after: string }) => {
      const { EventSchema } = await import("./gen/groups/v1/events_pb.js");
      const stream = clients().events.streamEvents(
        { organizationId: o.organization, types: o.type, after: o.after },
        { timeoutMs: 0 },
      );
      for await (const { event } of stream) {
        if (program.opts().json) console.log(JSON.stringify(toJson(EventSchema, event!)));
        else {
          const e = event!;
          const what =
            e.data.case === "member"
              ? `${e.data.value.groupId} ${e.data.value.organizationMembershipId} (${e.data.value.userId})`
              : e.data.case === "group"
                ? `${e.data.value.group?.id} "${e.data.value.group?.name}"`
                : "";
          console.log(
            `#${e.sequence}  ${time(e.createdAt)}  ${e.type}  ${e.organizationId}  ${what}`,
          );
        }
      }
    }),
  );

await program.parseAsync();
