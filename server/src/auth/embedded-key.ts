import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Where the embedded default keeps its generated key: beside the database file. */
export const embeddedKeyPath = (sqlitePath: string): string =>
  path.join(path.dirname(path.resolve(sqlitePath)), "api-key");

/**
 * The embedded default's deployment-wide API key, so a newcomer can call the
 * service at once: created on first start (mode 0600) and printed once; later
 * starts read it back and only say where it is.
 */
export function ensureEmbeddedKey(sqlitePath: string, print: (line: string) => void): string {
  const file = embeddedKeyPath(sqlitePath);
  if (existsSync(file)) {
    print(`API key: see ${file}`);
    return readFileSync(file, "utf8").trim();
  }
  const key = `gsk_${randomBytes(32).toString("base64url")}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: "wx" });
  print(
    `Created a deployment-wide API key (shown once, also saved to ${file}):\n\n    ${key}\n\n` +
      `Send it as "Authorization: Bearer <key>".`,
  );
  return key;
}
