import type { EntityManager } from "typeorm";
import { IdempotencyKeyEntity, type IdempotencyKeyRow } from "./entities.js";

/** The stored key, locked for update, if it was recorded after `notBefore`. */
export async function findIdempotencyKey(
  tx: EntityManager,
  organizationId: string,
  requestId: string,
  notBefore: Date,
): Promise<IdempotencyKeyRow | undefined> {
  const row = await tx
    .createQueryBuilder(IdempotencyKeyEntity, "k")
    .where("k.organization_id = :organizationId AND k.request_id = :requestId", {
      organizationId,
      requestId,
    })
    .setLock("pessimistic_write")
    .getOne();
  return row && row.createdAt >= notBefore ? row : undefined;
}

/**
 * Records a key. An expired row with the same key is replaced; a concurrent
 * first use of the same key makes one of the two transactions fail with a
 * duplicate key (the caller retries and then finds the winner's row).
 */
export async function saveIdempotencyKey(tx: EntityManager, row: IdempotencyKeyRow): Promise<void> {
  await tx.delete(IdempotencyKeyEntity, {
    organizationId: row.organizationId,
    requestId: row.requestId,
  });
  await tx.insert(IdempotencyKeyEntity, row);
}

/** Drops keys older than `before`, at most `max` at a time. */
export async function purgeIdempotencyKeys(
  tx: EntityManager,
  before: Date,
  max: number,
): Promise<number> {
  const result: { affectedRows?: number } = await tx.query(
    "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?",
    [before, max],
  );
  return result.affectedRows ?? 0;
}

export async function deleteIdempotencyKeysOfOrganization(
  tx: EntityManager,
  organizationId: string,
): Promise<void> {
  await tx.delete(IdempotencyKeyEntity, { organizationId });
}
