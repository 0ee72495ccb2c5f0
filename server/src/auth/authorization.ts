import type { DescField, DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { DomainError } from "../domain/errors.js";
import type { Principal } from "./principal.js";

/**
 * How a call is kept inside an organization-limited caller's organization:
 * - "organization_field": the request names its organization; naming another
 *   one is PERMISSION_DENIED, leaving it empty means the caller's own;
 * - "scoped_by_handler": the request names objects only (a membership id);
 *   the handler passes the caller's organization to the domain, which answers
 *   NOT_FOUND for another organization's objects, exactly as for missing ones;
 * - "deployment_only": only deployment-wide callers may make the call.
 */
type Tenancy =
  | { kind: "organization_field"; field: DescField }
  | { kind: "scoped_by_handler" }
  | { kind: "deployment_only" };

/** The calls without an organization_id field, each classified on purpose (see Tenancy). */
const WITHOUT_ORGANIZATION_FIELD: Record<string, Tenancy["kind"]> = {
  "groups.v1.OrganizationsService.CreateOrganization": "deployment_only",
  "groups.v1.OrganizationsService.ListOrganizations": "scoped_by_handler",
  "groups.v1.OrganizationsService.GetOrganizationMembership": "scoped_by_handler",
  "groups.v1.OrganizationsService.UpdateOrganizationMembership": "scoped_by_handler",
  "groups.v1.OrganizationsService.DeleteOrganizationMembership": "scoped_by_handler",
  "groups.v1.GroupsService.ListGroupsForOrganizationMembership": "scoped_by_handler",
  "groups.v1.GroupsService.CheckGroupMembership": "scoped_by_handler",
};

const permissionDenied = (reason: string, message: string) =>
  new DomainError("permission_denied", reason, message);

/** Read calls are the ones the contract marks side-effect free (idempotency_level). */
export const isReadOnly = (method: DescMethod) =>
  method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;

/**
 * Authorization for every authenticated call, on both front doors: the
 * permission a call needs (read or write) and tenancy. Built from the service
 * descriptors, and refuses to start if a call has no tenancy rule, so a new
 * RPC cannot slip through unclassified.
 */
export class Authorizer {
  private readonly rules = new Map<DescMethod, Tenancy>();

  constructor(services: DescService[]) {
    for (const service of services) {
      for (const method of service.methods) {
        const field = method.input.fields.find((f) => f.name === "organization_id");
        const named = WITHOUT_ORGANIZATION_FIELD[`${service.typeName}.${method.name}`];
        if (field && field.fieldKind === "scalar" && !named) {
          this.rules.set(method, { kind: "organization_field", field });
        } else if (!field && named) {
          this.rules.set(method, { kind: named } as Tenancy);
        } else {
          throw new Error(`no tenancy rule for ${service.typeName}.${method.name}`);
        }
      }
    }
  }

  /** Checks the call; may fill an empty organization_id with the caller's organization. */
  authorize(method: DescMethod, req: Record<string, unknown>, principal: Principal): void {
    if (isReadOnly(method) ? !principal.canRead : !principal.canWrite) {
      throw permissionDenied(
        "PERMISSION_MISSING",
        `the credentials do not allow ${isReadOnly(method) ? "reading" : "changes"}`,
      );
    }
    const own = principal.organizationId;
    if (own === undefined) return;
    const rule = this.rules.get(method);
    if (!rule) throw new Error(`no tenancy rule for ${method.parent.typeName}.${method.name}`);
    if (rule.kind === "deployment_only") {
      throw permissionDenied(
        "ORGANIZATION_LIMITED_CREDENTIALS",
        `${method.name} needs deployment-wide credentials`,
      );
    }
    if (rule.kind === "organization_field") {
      const named = req[rule.field.localName];
      if (named === "") req[rule.field.localName] = own;
      else if (named !== own) {
        throw permissionDenied(
          "ORGANIZATION_NOT_PERMITTED",
          "the credentials are limited to another organization",
        );
      }
    }
  }
}
