import type { MigrationInterface, QueryRunner } from "typeorm";

/** The relay's published-through watermark (see the MySQL twin of this migration). */
export class SqliteRelayWatermark1764500000000 implements MigrationInterface {
  name = "SqliteRelayWatermark1764500000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE relay_progress (
      id INTEGER NOT NULL PRIMARY KEY,
      published_through INTEGER NOT NULL)`);
    await q.query(`INSERT INTO relay_progress (id, published_through) SELECT 1, COALESCE(
      (SELECT MIN(sequence) - 1 FROM events WHERE published_at IS NULL AND sequence IS NOT NULL),
      (SELECT MAX(sequence) FROM events),
      0)`);
    await q.query("DROP INDEX ix_events_unpublished");
    await q.query("ALTER TABLE events DROP COLUMN published_at");
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query("ALTER TABLE events ADD COLUMN published_at DATETIME NULL");
    await q.query("CREATE INDEX ix_events_unpublished ON events (published_at, sequence)");
    await q.query(`UPDATE events SET published_at = created_at
      WHERE sequence <= (SELECT published_through FROM relay_progress WHERE id = 1)`);
    await q.query("DROP TABLE relay_progress");
  }
}
