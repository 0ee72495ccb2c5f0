import { OrganizationsService } from "../../../clients/src/gen/groups/v1/organizations_pb.js";
import type { Memberships } from "../domain/memberships.js";
import type { Organizations } from "../domain/organizations.js";
import {
  listMetadata,
  pageInput,
  statusFromProto,
  toMembership,
  toOrganization,
} from "./convert.js";
import { organizationScope, type Handlers } from "./pipeline.js";

/** groups.v1.OrganizationsService: decode → domain → shape. No rules here. */
export function organizationsHandlers(
  organizations: Organizations,
  memberships: Memberships,
): Handlers<typeof OrganizationsService> {
  return {
    async createOrganization(req, ctx) {
      const org = await organizations.create(
        { name: req.name, externalId: req.externalId },
        ctx.deadline,
      );
      return { organization: toOrganization(org) };
    },
    async getOrganization(req) {
      return { organization: toOrganization(await organizations.get(req.organizationId)) };
    },
    async listOrganizations(req, ctx) {
      const page = await organizations.list({ ...pageInput(req), within: organizationScope(ctx) });
      return { organizations: page.items.map(toOrganization), listMetadata: listMetadata(page) };
    },
    async updateOrganization(req, ctx) {
      const org = await organizations.update(
        {
          organizationId: req.organizationId,
          name: req.name,
          externalId: req.externalId,
          within: organizationScope(ctx),
        },
        ctx.deadline,
      );
      return { organization: toOrganization(org) };
    },
    async deleteOrganization(req, ctx) {
      await organizations.delete(req.organizationId, ctx.deadline);
      return {};
    },
    async createOrganizationMembership(req, ctx) {
      const m = await memberships.create(
        {
          organizationId: req.organizationId,
          userId: req.userId,
          status: statusFromProto(req.status),
        },
        ctx.deadline,
      );
      return { organizationMembership: toMembership(m) };
    },
    async getOrganizationMembership(req, ctx) {
      const m = await memberships.get(req.organizationMembershipId, organizationScope(ctx));
      return { organizationMembership: toMembership(m) };
    },
    async listOrganizationMemberships(req) {
      const page = await memberships.list({
        organizationId: req.organizationId,
        userId: req.userId,
        ...pageInput(req),
      });
      return {
        organizationMemberships: page.items.map(toMembership),
        listMetadata: listMetadata(page),
      };
    },
    async updateOrganizationMembership(req, ctx) {
      const m = await memberships.updateStatus(
        {
          membershipId: req.organizationMembershipId,
          status: statusFromProto(req.status),
          within: organizationScope(ctx),
        },
        ctx.deadline,
      );
      return { organizationMembership: toMembership(m) };
    },
    async deleteOrganizationMembership(req, ctx) {
      await memberships.delete(req.organizationMembershipId, organizationScope(ctx), ctx.deadline);
      return {};
    },
  };
}
