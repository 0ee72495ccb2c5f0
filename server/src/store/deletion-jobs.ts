import type { EntityManager } from "typeorm";
import { DeletionJobEntity, type DeletionKind } from "./entities.js";

/** Records, in the deleting transaction, that the reaper must finish removing `targetId`. */
export async function enqueueDeletion(
  tx: EntityManager,
  kind: DeletionKind,
  targetId: string,
  at: Date,
): Promise<void> {
  await tx.insert(DeletionJobEntity, { kind, targetId, requestedAt: at });
}

/** Oldest pending deletions of one kind. */
export async function pendingDeletions(
  db: EntityManager,
  kind: DeletionKind,
  max: number,
): Promise<string[]> {
  const rows = await db
    .createQueryBuilder(DeletionJobEntity, "j")
    .where("j.kind = :kind", { kind })
    .orderBy("j.requested_at", "ASC")
    .limit(max)
    .getMany();
  return rows.map((r) => r.targetId);
}

/** Removes the job, in the transaction that deletes the target's last row. */
export async function completeDeletion(
  tx: EntityManager,
  kind: DeletionKind,
  targetId: string,
): Promise<void> {
  await tx.delete(DeletionJobEntity, { kind, targetId });
}
