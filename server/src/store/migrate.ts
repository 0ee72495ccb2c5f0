import { ConfigError, loadConfig } from "../config.js";
import { createDataSource, migrate } from "./data-source.js";

/** `npm run migrate` applies pending migrations; `npm run migrate -- --revert` undoes the last one. */
async function main(): Promise<void> {
  const config = loadConfig();
  const dataSource = createDataSource(config.database);
  await dataSource.initialize();
  try {
    if (process.argv.includes("--revert")) {
      await dataSource.undoLastMigration({ transaction: "each" });
      console.log("reverted the last migration");
    } else {
      const applied = await migrate(dataSource);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is up to date");
    }
  } finally {
    await dataSource.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
