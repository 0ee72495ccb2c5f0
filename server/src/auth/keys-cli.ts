/**
 * `npm run keys -- …`: create, list and revoke service API keys. It works on
 * the database directly (the same DATABASE_URL / SQLITE_PATH as the server),
 * so minting keys is an operator's act, never reachable over the network.
 */
import { Command } from "commander";
import { ConfigError, loadConfig } from "../config.js";
import { DomainError } from "../domain/errors.js";
import { createDataSource, migrate } from "../store/data-source.js";
import { Database } from "../store/database.js";
import { ApiKeys, type ApiKeyInfo } from "./api-keys.js";

async function withKeys<T>(work: (keys: ApiKeys) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const dataSource = createDataSource(config.database);
  await dataSource.initialize();
  try {
    if (config.migrateOnStart) await migrate(dataSource);
    return await work(new ApiKeys(new Database(dataSource)));
  } finally {
    await dataSource.destroy();
  }
}

const describe = (k: ApiKeyInfo) =>
  [
    k.id,
    k.revokedAt ? "revoked" : "active",
    k.organizationId ?? "deployment-wide",
    k.permissions,
    k.createdAt.toISOString(),
    JSON.stringify(k.name),
  ].join("  ");

const program = new Command("keys")
  .description("Manage the service's API keys (stored as hashes; a secret is shown once)")
  .option("--json", "print JSON");
const json = () => program.opts<{ json?: boolean }>().json;

program
  .command("create")
  .description("create a key and print its secret once")
  .requiredOption("--name <name>", "what the key is for, e.g. billing-service")
  .option("--organization <org_id>", "limit the key to one organization")
  .option("--read-only", "allow reads only")
  .action(async (o: { name: string; organization?: string; readOnly?: boolean }) => {
    const { key, secret } = await withKeys((keys) =>
      keys.create({ name: o.name, organizationId: o.organization, readOnly: o.readOnly }),
    );
    if (json()) console.log(JSON.stringify({ ...key, secret }, null, 2));
    else {
      console.log(describe(key));
      console.log(
        `\nSecret (shown once; send it as "Authorization: Bearer <secret>"):\n\n    ${secret}\n`,
      );
    }
  });

program
  .command("list")
  .description("list keys (never their secrets)")
  .action(async () => {
    const list = await withKeys((keys) => keys.list());
    if (json()) console.log(JSON.stringify(list, null, 2));
    else for (const k of list) console.log(describe(k));
  });

program
  .command("revoke")
  .description("revoke a key; replicas stop accepting it within API_KEY_CACHE_MS")
  .argument("<key_id>", "the key's id (key_…)")
  .action(async (id: string) => {
    await withKeys((keys) => keys.revoke(id));
    console.log(`revoked ${id}`);
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else if (err instanceof DomainError) {
    const fields = err.fieldViolations.map((v) => `\n  ${v.field}: ${v.description}`).join("");
    console.error(`${err.reason}: ${err.message}${fields}`);
  } else console.error(err);
  process.exit(1);
});
