/**
 * The SDK package (clients/package.json, issue 5): built with its own
 * tsconfig, installed into a consumer's node_modules (as a link), every
 * export of its exports map resolves — in Node, in TypeScript (declarations),
 * and, for ./browser, in a browser bundle with no Node code — and its bin runs.
 */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const CLIENTS = path.join(ROOT, "clients");

interface PackageJson {
  name: string;
  type: string;
  main: string;
  types: string;
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
  files: string[];
  dependencies: Record<string, string>;
}

const manifest = JSON.parse(
  readFileSync(path.join(CLIENTS, "package.json"), "utf8"),
) as PackageJson;
const rootManifest = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
};

let tmp: string;
/** The package as it would be installed: its package.json, the built dist/, src/ and bin/. */
let pkg: string;
/** A project that depends on it: node_modules/<name> links to `pkg`. */
let consumer: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "groups-sdk-package-"));
  pkg = path.join(tmp, "package");
  consumer = path.join(tmp, "consumer");
  mkdirSync(pkg);
  // The package's own build: clients/tsconfig.json, into the package's dist/.
  await run(
    path.join(ROOT, "node_modules/.bin/tsc"),
    ["-p", path.join(CLIENTS, "tsconfig.json"), "--outDir", path.join(pkg, "dist")],
    { cwd: ROOT },
  );
  cpSync(path.join(CLIENTS, "package.json"), path.join(pkg, "package.json"));
  symlinkSync(path.join(CLIENTS, "src"), path.join(pkg, "src"));
  symlinkSync(path.join(CLIENTS, "bin"), path.join(pkg, "bin"));
  // Its dependencies, as npm would install them beside it.
  symlinkSync(path.join(ROOT, "node_modules"), path.join(pkg, "node_modules"));

  const scope = path.join(consumer, "node_modules", path.dirname(manifest.name));
  mkdirSync(scope, { recursive: true });
  symlinkSync(pkg, path.join(consumer, "node_modules", manifest.name));
  writeFileSync(
    path.join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", type: "module", private: true }),
  );
}, 60_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const entries = () =>
  Object.entries(manifest.exports).filter(
    (e): e is [string, { types: string; default: string }] => typeof e[1] === "object",
  );

describe("the SDK package", () => {
  it("is a module package whose exports, types and bin point at files it ships", () => {
    expect(manifest.type).toBe("module");
    expect(Object.keys(manifest.exports)).toEqual(expect.arrayContaining([".", "./browser"]));
    const targets = [
      manifest.main,
      manifest.types,
      ...entries().flatMap(([, t]) => [t.types, t.default]),
      ...Object.values(manifest.bin),
    ];
    expect(manifest.bin).toHaveProperty("groups");
    for (const target of targets) {
      expect(existsSync(path.join(pkg, target)), `${target} exists after the build`).toBe(true);
      const top = path.normalize(target).split(path.sep)[0];
      expect(manifest.files, `${target} is in "files"`).toContain(top);
    }
  });

  it("depends on what its code imports, at the versions the service uses", () => {
    for (const dep of [
      "@bufbuild/protobuf",
      "@connectrpc/connect",
      "@connectrpc/connect-node",
      "@connectrpc/connect-web",
      "nats",
      "commander",
    ]) {
      expect(manifest.dependencies[dep], dep).toBe(rootManifest.dependencies[dep]);
    }
  });

  it("resolves by name in Node: the node entry and the browser entry", async () => {
    const script = `
      const node = await import(${JSON.stringify(manifest.name)});
      const web = await import(${JSON.stringify(`${manifest.name}/browser`)});
      const kinds = (m) => Object.fromEntries(Object.keys(m).sort().map((k) => [k, typeof m[k]]));
      const walked = [];
      for await (const x of node.paginate(
        async (after) => ({ items: [after || "first"], listMetadata: { after: after ? "" : "second" } }),
        (r) => r.items,
      )) walked.push(x);
      const clients = node.createNodeClients({ baseUrl: "http://127.0.0.1:1", token: "k" });
      console.log(JSON.stringify({
        node: kinds(node),
        web: kinds(web),
        walked,
        services: [node.GroupsService.typeName, node.OrganizationsService.typeName, node.EventsService.typeName],
        clients: Object.keys(clients).sort(),
        webClients: Object.keys(web.createWebClients({ baseUrl: "http://127.0.0.1:1" })).sort(),
        reason: node.errorDetails(new Error("boom")).codeName,
      }));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      cwd: consumer,
    });
    const out = JSON.parse(stdout);
    for (const name of ["createNodeClients", "createWebClients", "paginate", "errorDetails"]) {
      expect(out.node[name] ?? out.web[name], name).toBe("function");
    }
    expect(out.node).toMatchObject({
      createNodeClients: "function",
      paginate: "function",
      errorDetails: "function",
      subscribeGroupEvents: "function",
      decodeEvent: "function",
      toWorkOSEvent: "function",
      bearer: "function",
      retryUnavailable: "function",
      GroupsService: "object",
    });
    expect(out.web).toMatchObject({
      createWebClients: "function",
      paginate: "function",
      errorDetails: "function",
      toWorkOSEvent: "function",
      GroupsService: "object",
    });
    // The browser entry carries no Node or NATS code.
    expect(out.web).not.toHaveProperty("createNodeClients");
    expect(out.web).not.toHaveProperty("subscribeGroupEvents");
    expect(out.walked).toEqual(["first", "second"]);
    expect(out.services).toEqual([
      "groups.v1.GroupsService",
      "groups.v1.OrganizationsService",
      "groups.v1.EventsService",
    ]);
    expect(out.clients).toEqual(["events", "groups", "organizations"]);
    expect(out.webClients).toEqual(["events", "groups", "organizations"]);
    expect(out.reason).toBe("Unknown");
  });

  it("types resolve through its declarations in a TypeScript consumer", async () => {
    writeFileSync(
      path.join(consumer, "check.ts"),
      `
      import { createNodeClients, paginate, errorDetails, type Group, type GroupsClients } from ${JSON.stringify(manifest.name)};
      import { createWebClients } from ${JSON.stringify(`${manifest.name}/browser`)};
      const c: GroupsClients = createNodeClients({ baseUrl: "http://x", protocol: "connect" });
      const w = createWebClients({ baseUrl: "http://x", token: () => "t" });
      export async function names(organizationId: string): Promise<string[]> {
        const out: string[] = [];
        for await (const g of paginate((after) => c.groups.listGroups({ organizationId, after }), (r) => r.groups)) {
          const typed: Group = g;
          out.push(typed.name);
        }
        await w.groups.getGroup({ organizationId, groupId: "group_x" }).catch((e) => errorDetails(e).reason.toLowerCase());
        return out;
      }
      // @ts-expect-error: the browser entry has no Node factory
      import type { createNodeClients as nope } from ${JSON.stringify(`${manifest.name}/browser`)};
      `,
    );
    writeFileSync(
      path.join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          lib: ["ES2023", "DOM"],
          strict: true,
          noEmit: true,
          // The package's declarations are generated by tsc; what matters here is that they resolve.
          skipLibCheck: true,
          types: ["node"],
          typeRoots: [path.join(ROOT, "node_modules/@types")],
        },
        files: ["check.ts"],
      }),
    );
    const result = await run(path.join(ROOT, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], {
      cwd: consumer,
    }).catch((err: { stdout: string }) => err);
    expect(result.stdout).toBe("");
  });

  it("its browser entry bundles for the browser (no Node built-ins)", async () => {
    const result = await build({
      stdin: {
        contents: `export { createWebClients, paginate, errorDetails } from ${JSON.stringify(`${manifest.name}/browser`)};`,
        resolveDir: consumer,
      },
      bundle: true,
      write: false,
      platform: "browser",
      format: "esm",
      logLevel: "silent",
    });
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0].text).toContain("createWebClients");
  });

  it("installs the `groups` CLI as its bin", async () => {
    const { stdout } = await run(
      process.execPath,
      [path.join(pkg, manifest.bin.groups), "--help"],
      {
        cwd: ROOT,
      },
    );
    expect(stdout).toMatch(/^Usage: groups/m);
    for (const command of ["orgs", "memberships", "groups", "events"]) {
      expect(stdout).toContain(command);
    }
  });
});
