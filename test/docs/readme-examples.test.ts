import { readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/**
 * The README's TypeScript examples compile against the SDK as it is: an
 * example that names a renamed function, a field the protos no longer have or
 * a wrong argument shape fails here instead of in a newcomer's editor. Each
 * example is type-checked as a module next to the README, with the few
 * values it takes from its surroundings declared.
 */
const root = path.resolve(import.meta.dirname, "../..");
const readme = readFileSync(path.join(root, "README.md"), "utf8");
const examples = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m, i) => ({
  line: readme.slice(0, m.index).split("\n").length,
  file: path.join(root, `readme-example-${i}.ts`),
  code: m[1],
}));

/** What the examples' surroundings provide. */
const CONTEXT = `
declare const apiKey: string;
declare const organizationId: string;
declare function getAccessToken(): Promise<string>;
declare function render(event: unknown): void;
export {};
`;

/** The project's compiler options, read once for every example. */
const options = {
  ...ts.getParsedCommandLineOfConfigFile(
    path.join(root, "tsconfig.json"),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
  )!.options,
  noEmit: true,
  sourceMap: false,
};

function typeErrors(file: string, code: string): string[] {
  const host = ts.createCompilerHost(options);
  const source = `${code}\n${CONTEXT}`;
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => (f === file ? source : readFile(f));
  host.fileExists = (f) => f === file || fileExists(f);
  host.getSourceFile = (f, lang, ...rest) =>
    f === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, ...rest);
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(file))
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
}

describe("README TypeScript examples", () => {
  it("there are examples to check", () => {
    expect(examples.length).toBeGreaterThanOrEqual(3);
  });

  it.each(examples)("the example at README.md:$line type-checks", ({ file, code }) => {
    expect(typeErrors(file, code)).toEqual([]);
  });
});
