import { createHash, timingSafeEqual } from "node:crypto";
import { DomainError } from "../domain/errors.js";

/**
 * Checks `Authorization: Bearer <token>`. For now the only credential is the
 * deployment-wide AUTH_BOOTSTRAP_KEY; API keys from the CLI and JWTs plug in
 * here. With authentication disabled (an explicit opt-in) every call passes.
 */
export class Authenticator {
  private readonly bootstrapDigest: Buffer | undefined;

  constructor(opts: { disabled: boolean; bootstrapKey?: string }) {
    this.disabled = opts.disabled;
    this.bootstrapDigest = opts.bootstrapKey ? digest(opts.bootstrapKey) : undefined;
  }

  private readonly disabled: boolean;

  authenticate(headers: Headers): void {
    if (this.disabled) return;
    const header = headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw new DomainError(
        "unauthenticated",
        "MISSING_CREDENTIALS",
        "send Authorization: Bearer <api key>",
      );
    }
    // Comparing fixed-length digests keeps the comparison constant-time whatever the token's length.
    if (!this.bootstrapDigest || !timingSafeEqual(digest(match[1]), this.bootstrapDigest)) {
      throw new DomainError(
        "unauthenticated",
        "INVALID_CREDENTIALS",
        "the credentials are not valid",
      );
    }
  }
}

const digest = (s: string) => createHash("sha256").update(s).digest();
