import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { DomainError, organizationNotFound } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import { Violations } from "../domain/validation.js";
import * as apiKeys from "../store/api-keys.js";
import type { Database } from "../store/database.js";
import type { ApiKeyRow } from "../store/entities.js";
import * as orgs from "../store/organizations.js";
import type { Principal } from "./principal.js";

/**
 * A key reads `gsk_<ulid>_<secret>`: the prefix makes leaked keys easy to spot
 * (secret scanners, logs), the ULID finds the row without a secret-dependent
 * lookup, and the secret is 256 random bits of which only a hash is stored.
 */
export const API_KEY_PREFIX = "gsk_";
const KEY_FORMAT = /^gsk_([0-7][0-9A-HJKMNP-TV-Z]{25})_([A-Za-z0-9_-]{43})$/;
const NAME_MAX = 128;

export interface ApiKeyInfo {
  id: string;
  name: string;
  organizationId: string | null;
  permissions: "read" | "read_write";
  createdAt: Date;
  revokedAt: Date | null;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();
const info = ({ secretHash: _hash, ...rest }: ApiKeyRow): ApiKeyInfo => rest;

/** Creating, listing, revoking and verifying service API keys. */
export class ApiKeys {
  /** Verified keys by id; a revocation elsewhere takes effect within `cacheMs`. */
  private readonly cache = new Map<string, { row: ApiKeyRow; until: number }>();

  constructor(
    private readonly db: Database,
    private readonly cacheMs = 5_000,
  ) {}

  looksLikeKey(token: string): boolean {
    return token.startsWith(API_KEY_PREFIX);
  }

  async create(input: {
    name: string;
    organizationId?: string;
    readOnly?: boolean;
  }): Promise<{ key: ApiKeyInfo; secret: string }> {
    const v = new Violations();
    const name = v.text("name", input.name, { min: 1, max: NAME_MAX, trim: true });
    if (input.organizationId !== undefined)
      v.id("organization_id", "organization", input.organizationId);
    v.throwIfAny();
    const id = newId("apiKey");
    const secretPart = randomBytes(32).toString("base64url");
    const row: ApiKeyRow = {
      id,
      name,
      secretHash: sha256(secretPart).toString("hex"),
      organizationId: input.organizationId ?? null,
      permissions: input.readOnly ? "read" : "read_write",
      createdAt: new Date(),
      revokedAt: null,
    };
    await this.db.transaction(async (tx) => {
      if (row.organizationId && !(await orgs.organizationExists(tx, row.organizationId)))
        throw organizationNotFound(row.organizationId);
      await apiKeys.insertApiKey(tx, row);
    });
    const secret = `${API_KEY_PREFIX}${id.slice("key_".length)}_${secretPart}`;
    return { key: info(row), secret };
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await apiKeys.listApiKeys(this.db.reader)).map(info);
  }

  async revoke(id: string): Promise<void> {
    const v = new Violations();
    v.id("id", "apiKey", id);
    v.throwIfAny();
    const revoked = await this.db.transaction((tx) => apiKeys.revokeApiKey(tx, id, new Date()));
    this.cache.delete(id);
    if (!revoked)
      throw new DomainError("not_found", "API_KEY_NOT_FOUND", `no live API key ${id}`, [], { id });
  }

  /** The caller a key stands for; UNAUTHENTICATED for a malformed, unknown or revoked key. */
  async verify(token: string): Promise<Principal> {
    const match = KEY_FORMAT.exec(token);
    if (!match) throw invalidKey();
    const id = `key_${match[1]}`;
    const row = await this.lookup(id);
    // Constant-time on the digests, so timing tells nothing about the stored hash.
    if (
      !row ||
      row.revokedAt ||
      !timingSafeEqual(sha256(match[2]), Buffer.from(row.secretHash, "hex"))
    ) {
      throw invalidKey();
    }
    return {
      id,
      organizationId: row.organizationId ?? undefined,
      canRead: true,
      canWrite: row.permissions === "read_write",
    };
  }

  private async lookup(id: string): Promise<ApiKeyRow | undefined> {
    const now = Date.now();
    const cached = this.cache.get(id);
    if (cached && cached.until > now) return cached.row;
    const row = await apiKeys.findApiKey(this.db.reader, id);
    // Only existing keys are cached, so the cache holds at most one entry per key.
    if (row && this.cacheMs > 0) this.cache.set(id, { row, until: now + this.cacheMs });
    else this.cache.delete(id);
    return row;
  }
}

export const invalidKey = () =>
  new DomainError("unauthenticated", "INVALID_CREDENTIALS", "the credentials are not valid");
