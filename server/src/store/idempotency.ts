import type { EntityManager } from "typeorm";
import { deleteLimited, forUpdate } from "./dialect.js";
import { IdempotencyKeyEntity, type IdempotencyKeyRow } from "./entities.js";

/** The stored key, locked for update, if it was recorded after `notBefore`. */
export async function findIdempotencyKey(
  tx: EntityManager,
  organizationId: string,
  requestId: string,
  notBefore: Date,
): Promise<IdempotencyKeyRow | undefined> {
  const qb = tx
    .createQueryBuilder(IdempotencyKeyEntity, "k")
    .where("k.organization_id = :organizationId AND k.request_id = :requestId", {
      organizationId,
      requestId,
    });
  const row = await forUpdate(qb).getOne();
  return row && row.createdAt >= notBefore ? row : undefined;
}

/**
 * Records a key. Only an expired row with the same key is replaced: a live one
 * (a concurrent first use that committed meanwhile) makes the insert fail with
 * a duplicate key, and the caller's retry then finds and returns its answer.
 */
export async function saveIdempotencyKey(
  tx: EntityManager,
  row: IdempotencyKeyRow,
  expiredBefore: Date,
): Promise<void> {
  await tx
    .createQueryBuilder()
    .delete()
    .from(IdempotencyKeyEntity)
    .where(
      "organization_id = :organizationId AND request_id = :requestId AND created_at < :expiredBefore",
      {
        organizationId: row.organizationId,
        requestId: row.requestId,
        expiredBefore,
      },
    )
    .execute();
  await tx.insert(IdempotencyKeyEntity, row);
}

/** Drops keys older than `before`, at most `max` at a time. */
export async function purgeIdempotencyKeys(
  tx: EntityManager,
  before: Date,
  max: number,
): Promise<number> {
  return deleteLimited(tx, "idempotency_keys", "created_at < ?", [before], max);
}

export async function deleteIdempotencyKeysOfOrganization(
  tx: EntityManager,
  organizationId: string,
): Promise<void> {
  await tx.delete(IdempotencyKeyEntity, { organizationId });
}
