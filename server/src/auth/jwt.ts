import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from "jose";
import { DomainError } from "../domain/errors.js";
import type { Principal } from "./principal.js";

export interface JwtSettings {
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** Asymmetric algorithms only; the token's own `alg` header is never trusted beyond this list. */
  algorithms: string[];
  clockSkewSeconds: number;
  /** Claim naming the caller's organization (required). */
  organizationClaim: string;
  /** Claim listing permissions: an array of strings or a space-separated string. */
  permissionsClaim: string;
  readPermission: string;
  writePermission: string;
}

const invalidToken = (why: string) =>
  new DomainError("unauthenticated", "INVALID_TOKEN", `the access token is not valid: ${why}`);

/**
 * Verifies browser apps' access tokens against the identity provider's JWKS.
 * Keys are cached; an unknown `kid` refetches the set at most once per
 * cooldown, so a flood of forged kids cannot hammer the provider.
 */
export class JwtVerifier {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly settings: JwtSettings) {
    this.keys = createRemoteJWKSet(new URL(settings.jwksUrl), {
      timeoutDuration: 5_000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
  }

  async verify(token: string): Promise<Principal> {
    const s = this.settings;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.keys, {
        algorithms: s.algorithms,
        issuer: s.issuer,
        audience: s.audience,
        clockTolerance: s.clockSkewSeconds,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      throw this.mapError(err);
    }
    const org = claims[s.organizationClaim];
    if (typeof org !== "string" || org === "") {
      throw new DomainError(
        "permission_denied",
        "ORGANIZATION_CLAIM_MISSING",
        `the access token has no "${s.organizationClaim}" claim; tokens must be limited to one organization`,
      );
    }
    const granted = permissionsOf(claims[s.permissionsClaim]);
    const canWrite = granted.has(s.writePermission);
    return {
      id: `jwt:${claims.iss}#${claims.sub ?? org}`,
      organizationId: org,
      canRead: canWrite || granted.has(s.readPermission),
      canWrite,
    };
  }

  private mapError(err: unknown): DomainError {
    if (err instanceof errors.JWTExpired) return invalidToken("it has expired");
    if (err instanceof errors.JWTClaimValidationFailed)
      return invalidToken(
        `claim "${err.claim}" ${err.reason === "check_failed" ? "is not acceptable" : err.reason.replace(/_/g, " ")}`,
      );
    if (err instanceof errors.JOSEAlgNotAllowed)
      return invalidToken("its algorithm is not allowed");
    if (err instanceof errors.JWKSNoMatchingKey) return invalidToken("no signing key matches it");
    if (err instanceof errors.JWSSignatureVerificationFailed)
      return invalidToken("its signature does not verify");
    if (
      err instanceof errors.JWKSTimeout ||
      !(err instanceof errors.JOSEError) ||
      isJwksFetch(err)
    ) {
      return new DomainError(
        "unavailable",
        "JWKS_UNAVAILABLE",
        "the identity provider's signing keys cannot be fetched; retry later",
      );
    }
    return invalidToken("it is malformed");
  }
}

const isJwksFetch = (err: Error) =>
  /JSON Web Key Set/.test(err.message) && !(err instanceof errors.JWSInvalid);

function permissionsOf(claim: unknown): Set<string> {
  if (typeof claim === "string") return new Set(claim.split(" ").filter(Boolean));
  if (Array.isArray(claim)) return new Set(claim.filter((p): p is string => typeof p === "string"));
  return new Set();
}

/** Three base64url parts: worth handing to the JWT verifier. */
export const looksLikeJwt = (token: string) =>
  /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
