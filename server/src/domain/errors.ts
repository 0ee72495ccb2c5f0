/**
 * Errors the domain raises. They carry no protocol types: rpc/errors.ts maps
 * each kind to a status code and each reason to google.rpc.ErrorInfo.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "resource_exhausted"
  | "unauthenticated"
  | "permission_denied"
  | "unavailable"
  | "deadline_exceeded";

export interface FieldViolation {
  field: string;
  description: string;
}

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Stable UPPER_SNAKE reason, e.g. GROUP_NOT_FOUND. */
    readonly reason: string,
    message: string,
    readonly fieldViolations: FieldViolation[] = [],
    readonly metadata: Record<string, string> = {},
    /** When the caller may retry (google.rpc.RetryInfo). */
    readonly retry?: { retryAfterMs: number },
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const notFound = (reason: string, what: string, id: string) =>
  new DomainError("not_found", reason, `${what} not found: ${id}`, [], { id });

export const organizationNotFound = (id: string) =>
  notFound("ORGANIZATION_NOT_FOUND", "organization", id);
export const membershipNotFound = (id: string) =>
  notFound("ORGANIZATION_MEMBERSHIP_NOT_FOUND", "organization membership", id);
export const groupNotFound = (id: string) => notFound("GROUP_NOT_FOUND", "group", id);

/** Thrown when fields fail validation; lists every bad field. */
export function invalidArgument(violations: FieldViolation[]): DomainError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new DomainError(
    "invalid_argument",
    "INVALID_FIELDS",
    `invalid request: ${summary}`,
    violations,
  );
}
