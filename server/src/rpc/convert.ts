import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Order, type ListMetadata } from "../../../clients/src/gen/groups/v1/common_pb.js";
import {
  GroupSchema,
  type Group as GroupMessage,
} from "../../../clients/src/gen/groups/v1/groups_pb.js";
import {
  OrganizationMembershipSchema,
  OrganizationMembershipStatus,
  OrganizationSchema,
  type Organization as OrganizationMessage,
  type OrganizationMembership as MembershipMessage,
} from "../../../clients/src/gen/groups/v1/organizations_pb.js";
import type { PageInput } from "../domain/pagination.js";
import {
  etagOf,
  type Group,
  type Membership,
  type MembershipStatus,
  type Organization,
  type Page,
} from "../domain/model.js";

/** Domain objects ⇄ protobuf messages. The only place that knows both. */

const ts = (d: Date): Timestamp => timestampFromDate(d);

export const toOrganization = (o: Organization): OrganizationMessage =>
  create(OrganizationSchema, {
    id: o.id,
    name: o.name,
    externalId: o.externalId ?? "",
    createdAt: ts(o.createdAt),
    updatedAt: ts(o.updatedAt),
  });

const STATUS_TO_PROTO: Record<MembershipStatus, OrganizationMembershipStatus> = {
  active: OrganizationMembershipStatus.ACTIVE,
  inactive: OrganizationMembershipStatus.INACTIVE,
  pending: OrganizationMembershipStatus.PENDING,
};

/** Proto status → domain name; UNSPECIFIED → undefined; unknown numbers pass through for the domain to reject. */
export function statusFromProto(s: OrganizationMembershipStatus): string | undefined {
  if (s === OrganizationMembershipStatus.UNSPECIFIED) return undefined;
  const found = (Object.keys(STATUS_TO_PROTO) as MembershipStatus[]).find(
    (k) => STATUS_TO_PROTO[k] === s,
  );
  return found ?? `unknown(${s})`;
}

export const toMembership = (m: Membership): MembershipMessage =>
  create(OrganizationMembershipSchema, {
    id: m.id,
    organizationId: m.organizationId,
    userId: m.userId,
    status: STATUS_TO_PROTO[m.status],
    createdAt: ts(m.createdAt),
    updatedAt: ts(m.updatedAt),
  });

export const toGroup = (g: Group): GroupMessage =>
  create(GroupSchema, {
    id: g.id,
    organizationId: g.organizationId,
    name: g.name,
    description: g.description ?? "",
    memberCount: BigInt(g.memberCount),
    etag: etagOf(g),
    createdAt: ts(g.createdAt),
    updatedAt: ts(g.updatedAt),
  });

/** The pagination fields every List request carries. */
export function pageInput(req: {
  limit: number;
  before: string;
  after: string;
  order: Order;
}): PageInput {
  const order =
    req.order === Order.UNSPECIFIED
      ? undefined
      : req.order === Order.ASC
        ? "asc"
        : req.order === Order.DESC
          ? "desc"
          : `unknown(${req.order})`;
  return { limit: req.limit, before: req.before, after: req.after, order };
}

export function listMetadata(page: Page<unknown>): ListMetadata {
  return { $typeName: "groups.v1.ListMetadata", before: page.before, after: page.after };
}
