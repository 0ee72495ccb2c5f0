#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (installed with the package).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const cli = join(dirname(fileURLToPath(import.meta.url)), "../src/cli.ts");
const { status } = spawnSync(process.execPath, ["--import", "tsx", cli, ...process.argv.slice(2)], {
  stdio: "inherit",
});
process.exit(status ?? 1);
