import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Where the page lives on PORT. */
export const ADMIN_PATH = "/admin";

/**
 * The page and its assets come only from this origin; the RPCs it calls are
 * on the same origin (connect-src 'self'), so no CORS is involved.
 */
export const ADMIN_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export interface HttpRequest {
  url?: string;
  method?: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface HttpResponse {
  writeHead(
    status: number,
    headers: Record<string, string>,
  ): { end(body?: string | Uint8Array): void };
}

interface Asset {
  type: string;
  body: Uint8Array;
  etag: string;
}

/** The page cannot be built here (no sources, no esbuild): 503, not a bug. */
class AdminUnavailable extends Error {}

/** Every file of the page, by its name under /admin/. */
type Assets = Map<string, Asset>;

const asset = (type: string, body: Uint8Array): Asset => ({
  type,
  body,
  etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
});

/**
 * The directory holding the page's sources (clients/admin): found by walking
 * up from this module, so it works from server/src (tsx) and from dist/.
 */
export function findAdminSources(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "clients", "admin");
    if (existsSync(path.join(candidate, "main.ts"))) return candidate;
    if (path.dirname(dir) === dir)
      throw new AdminUnavailable("its sources (clients/admin) are not deployed with the server");
  }
}

/**
 * Bundles clients/admin/main.ts (and the SDK and generated clients it
 * imports) with esbuild, in memory: nothing is written to disk.
 */
export async function buildAdminAssets(sources = findAdminSources()): Promise<Assets> {
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch {
    throw new AdminUnavailable(
      "it is bundled with esbuild, which is not installed (install the dev dependencies)",
    );
  }
  const result = await esbuild.build({
    entryPoints: [path.join(sources, "main.ts")],
    outfile: path.join(sources, "app.js"),
    tsconfig: path.join(sources, "tsconfig.json"),
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    logLevel: "silent",
  });
  const assets: Assets = new Map();
  for (const file of result.outputFiles) {
    const name = path.basename(file.path);
    if (name === "app.js") assets.set(name, asset("text/javascript; charset=utf-8", file.contents));
    else if (name === "app.js.map") assets.set(name, asset("application/json", file.contents));
  }
  if (!assets.has("app.js")) throw new Error("esbuild produced no app.js");
  const [html, css] = await Promise.all([
    readFile(path.join(sources, "index.html")),
    readFile(path.join(sources, "app.css")),
  ]);
  assets.set("", asset("text/html; charset=utf-8", html));
  assets.set("app.css", asset("text/css; charset=utf-8", css));
  return assets;
}

/**
 * Serves the admin page at /admin/ (GET and HEAD): the HTML, the stylesheet,
 * and the script bundle, built on the first request and then kept in memory.
 * The page is public; the RPCs it makes need the key entered on it.
 * Returns false for paths outside /admin, for the caller to answer.
 */
export function adminPage(opts: { build?: () => Promise<Assets> } = {}) {
  const build = opts.build ?? (() => buildAdminAssets());
  let assets: Promise<Assets> | undefined;
  const load = () => {
    // A failed build is not kept, so the next request tries again.
    assets ??= build().catch((err: unknown) => {
      assets = undefined;
      throw err;
    });
    return assets;
  };

  const headers = (type: string, extra: Record<string, string> = {}) => ({
    "content-type": type,
    "content-security-policy": ADMIN_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    // Revalidated on every load (cheap: ETag), so a new bundle shows at once.
    "cache-control": "no-cache",
    ...extra,
  });
  const text = (res: HttpResponse, status: number, body: string, extra = {}) =>
    res.writeHead(status, headers("text/plain; charset=utf-8", extra)).end(body);

  return (req: HttpRequest, res: HttpResponse): boolean => {
    const pathname = (req.url ?? "").split("?")[0];
    if (pathname !== ADMIN_PATH && !pathname.startsWith(`${ADMIN_PATH}/`)) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      text(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
      return true;
    }
    // Relative links (app.js, the RPCs at ../) need the trailing slash.
    if (pathname === ADMIN_PATH) {
      text(res, 308, "moved to /admin/\n", { location: "admin/" });
      return true;
    }
    const name = pathname.slice(ADMIN_PATH.length + 1);
    const key = name === "index.html" ? "" : name;
    load().then(
      (files) => {
        const file = files.get(key);
        if (!file) return text(res, 404, "not found\n");
        const h = headers(file.type, { etag: file.etag });
        if (req.headers["if-none-match"] === file.etag) return res.writeHead(304, h).end();
        res
          .writeHead(200, { ...h, "content-length": String(file.body.byteLength) })
          .end(req.method === "HEAD" ? undefined : file.body);
      },
      (err: unknown) =>
        text(
          res,
          err instanceof AdminUnavailable ? 503 : 500,
          `admin page unavailable: ${err instanceof Error ? err.message : String(err)}\n`,
        ),
    );
    return true;
  };
}
