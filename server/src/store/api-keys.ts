import type { EntityManager } from "typeorm";
import { ApiKeyEntity, type ApiKeyRow } from "./entities.js";

export async function insertApiKey(tx: EntityManager, row: ApiKeyRow): Promise<void> {
  await tx.insert(ApiKeyEntity, row);
}

export async function findApiKey(db: EntityManager, id: string): Promise<ApiKeyRow | undefined> {
  return (await db.findOneBy(ApiKeyEntity, { id })) ?? undefined;
}

/** Every key, newest first (a deployment has a handful, not thousands). */
export async function listApiKeys(db: EntityManager): Promise<ApiKeyRow[]> {
  return db.find(ApiKeyEntity, { order: { id: "DESC" } });
}

/** Marks the key revoked; false when there is no such live key. */
export async function revokeApiKey(tx: EntityManager, id: string, at: Date): Promise<boolean> {
  const result = await tx
    .createQueryBuilder()
    .update(ApiKeyEntity)
    .set({ revokedAt: at })
    .where("id = :id AND revoked_at IS NULL", { id })
    .execute();
  return (result.affected ?? 0) > 0;
}
