/**
 * Who is calling, as far as authorization cares: established once per call by
 * the Authenticator and checked by the call pipeline and the handlers.
 */
export interface Principal {
  /** Stable caller identity for rate limiting and logs, e.g. "key_01…", "jwt:<iss>#<sub>". */
  readonly id: string;
  /** The one organization this caller may see; undefined for a deployment-wide caller. */
  readonly organizationId?: string;
  readonly canRead: boolean;
  readonly canWrite: boolean;
}

/** The caller when authentication is disabled, and the bootstrap key's caller. */
export const deploymentPrincipal = (id: string): Principal => ({
  id,
  canRead: true,
  canWrite: true,
});
