import { createHash, timingSafeEqual } from "node:crypto";
import { DomainError } from "../domain/errors.js";
import { invalidKey, type ApiKeys } from "./api-keys.js";
import { looksLikeJwt, type JwtVerifier } from "./jwt.js";
import { deploymentPrincipal, type Principal } from "./principal.js";

/**
 * Turns `Authorization: Bearer <token>` into a Principal. Three kinds of
 * credential: the deployment's bootstrap key from configuration, service API
 * keys (`gsk_…`, see api-keys.ts) and JWT access tokens from the identity
 * provider. With authentication disabled (an explicit opt-in) every call is
 * the deployment-wide "anonymous" caller.
 */
export class Authenticator {
  private readonly bootstrapDigest: Buffer | undefined;

  constructor(
    private readonly opts: {
      disabled: boolean;
      bootstrapKey?: string;
      apiKeys: ApiKeys;
      jwt?: JwtVerifier;
    },
  ) {
    this.bootstrapDigest = opts.bootstrapKey ? digest(opts.bootstrapKey) : undefined;
  }

  async authenticate(headers: Headers): Promise<Principal> {
    if (this.opts.disabled) return ANONYMOUS;
    const match = /^Bearer +(\S+)$/i.exec(headers.get("authorization") ?? "");
    if (!match) {
      throw new DomainError(
        "unauthenticated",
        "MISSING_CREDENTIALS",
        "send Authorization: Bearer <API key or access token>",
      );
    }
    const token = match[1];
    // Comparing fixed-length digests keeps the comparison constant-time whatever the token's length.
    if (this.bootstrapDigest && timingSafeEqual(digest(token), this.bootstrapDigest)) {
      return BOOTSTRAP;
    }
    if (this.opts.apiKeys.looksLikeKey(token)) return this.opts.apiKeys.verify(token);
    if (this.opts.jwt && looksLikeJwt(token)) return this.opts.jwt.verify(token);
    throw invalidKey();
  }
}

const ANONYMOUS = deploymentPrincipal("anonymous");
const BOOTSTRAP = deploymentPrincipal("bootstrap");
const digest = (s: string) => createHash("sha256").update(s).digest();
