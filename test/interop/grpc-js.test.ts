import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * A caller that has nothing but the .proto files: plain @grpc/grpc-js with
 * @grpc/proto-loader, as a Node microservice (or any other gRPC stack) would
 * use the service. Error details are read from `grpc-status-details-bin`.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const includeDirs = [path.join(root, "proto"), path.join(root, "proto/vendor")];

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type UnaryClient = grpc.Client &
  Record<string, (req: object, md: grpc.Metadata, cb: Callback<any>) => void>;

let t: TestServer;
let groups: UnaryClient;
let orgs: UnaryClient;
let statusType: protobuf.Type;
let detailsRoot: protobuf.Root;
let metadata: grpc.Metadata;

function call<T = any>(
  client: UnaryClient,
  method: string,
  req: object,
  md = metadata,
): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](req, md, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

async function callError(client: UnaryClient, method: string, req: object, md = metadata) {
  const err = await call(client, method, req, md).then(
    () => undefined,
    (e: grpc.ServiceError) => e,
  );
  if (!err) throw new Error(`${method} succeeded, expected an error`);
  const bin = err.metadata.get("grpc-status-details-bin")[0] as Buffer | undefined;
  expect(bin, "grpc-status-details-bin").toBeInstanceOf(Buffer);
  const status = statusType.toObject(statusType.decode(bin!), { defaults: true }) as {
    code: number;
    message: string;
    details: { type_url: string; value: Uint8Array }[];
  };
  expect(status.code).toBe(err.code);
  const details = status.details.map((any) => {
    const type = detailsRoot.lookupType(any.type_url.replace(/^type.googleapis.com\//, ""));
    return {
      type: type.fullName.slice(1),
      value: type.toObject(type.decode(any.value), { defaults: true }),
    };
  });
  const info = details.find((d) => d.type === "google.rpc.ErrorInfo")?.value as
    { reason: string; domain: string } | undefined;
  const badRequest = details.find((d) => d.type === "google.rpc.BadRequest")?.value as
    { field_violations: { field: string; description: string }[] } | undefined;
  return { code: err.code, message: err.details, reason: info?.reason, badRequest };
}

beforeAll(async () => {
  t = await startTestServer();
  const definition = protoLoader.loadSync(
    ["groups/v1/groups.proto", "groups/v1/organizations.proto"],
    { includeDirs, keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const credentials = grpc.credentials.createInsecure();
  groups = new loaded.groups.v1.GroupsService(t.grpcAddress, credentials);
  orgs = new loaded.groups.v1.OrganizationsService(t.grpcAddress, credentials);
  detailsRoot = await new protobuf.Root().load(
    ["google/rpc/status.proto", "google/rpc/error_details.proto"].map((f) =>
      path.join(root, "proto/vendor", f),
    ),
    { keepCase: true },
  );
  statusType = detailsRoot.lookupType("google.rpc.Status");
  metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${t.apiKey}`);
});

afterAll(async () => {
  groups?.close();
  orgs?.close();
  await t?.close();
});

describe("plain @grpc/grpc-js client with only the .proto files", () => {
  it("runs a full lifecycle", async () => {
    const { organization } = await call(orgs, "CreateOrganization", { name: "Interop Inc" });
    expect(organization.id).toMatch(/^org_[0-9A-HJKMNP-TV-Z]{26}$/);
    const { organization_membership: member } = await call(orgs, "CreateOrganizationMembership", {
      organization_id: organization.id,
      user_id: "user_interop",
    });
    expect(member.status).toBe("ORGANIZATION_MEMBERSHIP_STATUS_ACTIVE");

    const { group } = await call(groups, "CreateGroup", {
      organization_id: organization.id,
      name: "  Engineering  ",
      description: "Builds things",
    });
    expect(group).toMatchObject({
      name: "Engineering",
      description: "Builds things",
      member_count: "0",
    });
    expect(Number(group.created_at.seconds)).toBeGreaterThan(1_700_000_000);

    const added = await call(groups, "AddGroupMember", {
      organization_id: organization.id,
      group_id: group.id,
      organization_membership_id: member.id,
    });
    expect(added).toMatchObject({ added: true, group: { member_count: "1" } });
    const again = await call(groups, "AddGroupMember", {
      organization_id: organization.id,
      group_id: group.id,
      organization_membership_id: member.id,
    });
    expect(again.added).toBe(false);

    const members = await call(groups, "ListGroupMembers", {
      organization_id: organization.id,
      group_id: group.id,
    });
    expect(members.organization_memberships.map((m: { id: string }) => m.id)).toEqual([member.id]);
    expect(members.list_metadata).toEqual({ before: "", after: "" });

    const check = await call(groups, "CheckGroupMembership", {
      organization_membership_id: member.id,
      group_ids: [group.id],
    });
    expect(check.group_ids).toEqual([group.id]);

    const renamed = await call(groups, "UpdateGroup", {
      organization_id: organization.id,
      group_id: group.id,
      name: "Platform",
      etag: group.etag,
    });
    expect(renamed.group).toMatchObject({ name: "Platform", description: "Builds things" });

    const removed = await call(groups, "RemoveGroupMember", {
      organization_id: organization.id,
      group_id: group.id,
      organization_membership_id: member.id,
    });
    expect(removed).toMatchObject({ removed: true, group: { member_count: "0" } });

    await call(groups, "DeleteGroup", { organization_id: organization.id, group_id: group.id });
    const gone = await callError(groups, "GetGroup", {
      organization_id: organization.id,
      group_id: group.id,
    });
    expect(gone).toMatchObject({ code: grpc.status.NOT_FOUND, reason: "GROUP_NOT_FOUND" });

    await call(orgs, "DeleteOrganizationMembership", { organization_membership_id: member.id });
    await call(orgs, "DeleteOrganization", { organization_id: organization.id });
    const orgGone = await callError(orgs, "GetOrganization", { organization_id: organization.id });
    expect(orgGone).toMatchObject({
      code: grpc.status.NOT_FOUND,
      reason: "ORGANIZATION_NOT_FOUND",
    });
  });

  it("reads google.rpc.BadRequest naming every bad field from grpc-status-details-bin", async () => {
    const err = await callError(groups, "CreateGroup", {
      organization_id: "org_nope",
      name: "\u202Eevil",
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.reason).toBe("INVALID_FIELDS");
    expect(err.badRequest?.field_violations.map((v) => v.field).sort()).toEqual([
      "name",
      "organization_id",
    ]);
  });

  it("reads ErrorInfo reasons for NOT_FOUND, FAILED_PRECONDITION and ABORTED", async () => {
    const { organization: a } = await call(orgs, "CreateOrganization", { name: "A" });
    const { organization: b } = await call(orgs, "CreateOrganization", { name: "B" });
    const { organization_membership: mb } = await call(orgs, "CreateOrganizationMembership", {
      organization_id: b.id,
      user_id: "u",
    });
    const { group } = await call(groups, "CreateGroup", { organization_id: a.id, name: "G" });

    const foreign = await callError(groups, "AddGroupMember", {
      organization_id: a.id,
      group_id: group.id,
      organization_membership_id: mb.id,
    });
    expect(foreign).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      reason: "MEMBERSHIP_IN_OTHER_ORGANIZATION",
    });

    const otherOrg = await callError(groups, "GetGroup", {
      organization_id: b.id,
      group_id: group.id,
    });
    expect(otherOrg).toMatchObject({ code: grpc.status.NOT_FOUND, reason: "GROUP_NOT_FOUND" });

    const stale = await callError(groups, "UpdateGroup", {
      organization_id: a.id,
      group_id: group.id,
      name: "New",
      etag: "v999",
    });
    expect(stale).toMatchObject({ code: grpc.status.ABORTED, reason: "ETAG_MISMATCH" });
  });

  it("rejects a call without credentials as UNAUTHENTICATED", async () => {
    const err = await callError(orgs, "ListOrganizations", {}, new grpc.Metadata());
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, reason: "MISSING_CREDENTIALS" });
  });
});
