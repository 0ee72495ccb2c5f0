#!/usr/bin/env node
// The `groups` CLI: the compiled dist/cli.js when the package is built (as published),
// else the TypeScript source through tsx, resolved from this package (not the caller's cwd).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "dist/cli.js");
if (existsSync(built)) {
  await import(pathToFileURL(built).href);
} else {
  const tsx = import.meta.resolve("tsx");
  const cli = join(root, "src/cli.ts");
  const { status } = spawnSync(process.execPath, ["--import", tsx, cli, ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  process.exit(status ?? 1);
}
