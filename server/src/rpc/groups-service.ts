import { GroupsService } from "../../../clients/src/gen/groups/v1/groups_pb.js";
import type { Groups } from "../domain/groups.js";
import { listMetadata, pageInput, toGroup, toMembership } from "./convert.js";
import { organizationScope, type CallContext, type Handlers } from "./pipeline.js";

/** The group a member change names, and the organization the caller is confined to. */
const changeIn = (req: { organizationId: string; groupId: string }, ctx: CallContext) => ({
  organizationId: req.organizationId,
  groupId: req.groupId,
  within: organizationScope(ctx),
});

/** groups.v1.GroupsService: decode → domain → shape. No rules here. */
export function groupsHandlers(groups: Groups): Handlers<typeof GroupsService> {
  return {
    async createGroup(req, ctx) {
      const group = await groups.create(
        {
          organizationId: req.organizationId,
          name: req.name,
          description: req.description,
          requestId: req.requestId,
        },
        ctx.deadline,
      );
      return { group: toGroup(group) };
    },
    async getGroup(req, ctx) {
      return { group: toGroup(await groups.get(req, ctx.deadline)) };
    },
    async listGroups(req) {
      const page = await groups.list({ organizationId: req.organizationId, ...pageInput(req) });
      return { groups: page.items.map(toGroup), listMetadata: listMetadata(page) };
    },
    async updateGroup(req, ctx) {
      const group = await groups.update(
        {
          organizationId: req.organizationId,
          groupId: req.groupId,
          name: req.name,
          description: req.description,
          etag: req.etag,
        },
        ctx.deadline,
      );
      return { group: toGroup(group) };
    },
    async deleteGroup(req, ctx) {
      await groups.delete(req, ctx.deadline);
      return {};
    },
    async addGroupMember(req, ctx) {
      const { group, added } = await groups.addMember(
        { ...changeIn(req, ctx), membershipId: req.organizationMembershipId },
        ctx.deadline,
      );
      return { group: toGroup(group), added };
    },
    async removeGroupMember(req, ctx) {
      const { group, removed } = await groups.removeMember(
        {
          ...changeIn(req, ctx),
          membershipId: req.organizationMembershipId,
          allowMissing: req.allowMissing,
        },
        ctx.deadline,
      );
      return { group: toGroup(group), removed };
    },
    async listGroupMembers(req) {
      const page = await groups.listMembers({
        organizationId: req.organizationId,
        groupId: req.groupId,
        ...pageInput(req),
      });
      return {
        organizationMemberships: page.items.map(toMembership),
        listMetadata: listMetadata(page),
      };
    },
    async listGroupsForOrganizationMembership(req, ctx) {
      const page = await groups.listForMembership(
        {
          membershipId: req.organizationMembershipId,
          within: organizationScope(ctx),
          ...pageInput(req),
        },
        ctx.deadline,
      );
      return { groups: page.items.map(toGroup), listMetadata: listMetadata(page) };
    },
    async batchAddGroupMembers(req, ctx) {
      const { group, results } = await groups.batchAdd(
        { ...changeIn(req, ctx), membershipIds: req.organizationMembershipIds },
        ctx.deadline,
      );
      return {
        group: toGroup(group),
        results: results.map((r) => ({
          organizationMembershipId: r.membershipId,
          added: r.changed,
        })),
      };
    },
    async batchRemoveGroupMembers(req, ctx) {
      const { group, results } = await groups.batchRemove(
        { ...changeIn(req, ctx), membershipIds: req.organizationMembershipIds },
        ctx.deadline,
      );
      return {
        group: toGroup(group),
        results: results.map((r) => ({
          organizationMembershipId: r.membershipId,
          removed: r.changed,
        })),
      };
    },
    async checkGroupMembership(req, ctx) {
      const groupIds = await groups.check(
        {
          membershipId: req.organizationMembershipId,
          within: organizationScope(ctx),
          groupIds: req.groupIds,
        },
        ctx.deadline,
      );
      return { groupIds };
    },
  };
}
