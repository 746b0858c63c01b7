// The README's examples, run as a user would: the package packed with
// `npm pack` and installed into a scratch project, each ```ts block
// type-checked against the installed package and run against the server.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

import ts from "typescript";

import { needsServer } from "./helpers.js";

const sdkDir = fileURLToPath(new URL("../../", import.meta.url));
const blocks = [...readFileSync(join(sdkDir, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
let project = "";

function run(command: string, args: string[], cwd: string, timeout = 120_000) {
  const out = spawnSync(command, args, { cwd, encoding: "utf8", timeout, env: process.env });
  assert.equal(out.status, 0, `${command} ${args.join(" ")} failed (${out.signal ?? out.status}):\n${out.stdout}\n${out.stderr}`);
  return out.stdout;
}

before(() => {
  if (needsServer) return;
  project = mkdtempSync(join(tmpdir(), "switchboard-readme-"));
  // dist/ is built already (`npm run build`); packing does not build it again.
  const packed = JSON.parse(run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", project], sdkDir)) as {
    filename: string;
  }[];
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "readme-example", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", `./${packed[0]!.filename}`], project);
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

/** Type-checks `source` as a user's module and returns the JavaScript file it compiles to. */
function compile(name: string, source: string): string {
  const file = join(project, `${name}.ts`);
  writeFileSync(file, source);
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    types: ["node"],
    typeRoots: [join(sdkDir, "node_modules/@types")],
  });
  const emitted = program.emit();
  const diagnostics = ts.getPreEmitDiagnostics(program).concat(emitted.diagnostics);
  const text = ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => project,
    getNewLine: () => "\n",
  });
  assert.equal(text, "", `README example ${name} does not type-check`);
  return file.replace(/\.ts$/, ".js");
}

test("the README has its two examples", () => {
  assert.equal(blocks.length, 2);
});

test("the README's first example runs", { skip: needsServer }, () => {
  const out = run("node", [compile("example", blocks[0]!)], project);
  assert.match(out, /ann joins standup-\d+ at wss?:\/\/\S+\/rtc/);
  assert.match(out, /^\d+ room\.started$/m);
  assert.match(out, /409 room_exists: /);
});

test("the README's webhook receiver verifies a real delivery", { skip: needsServer }, () => {
  const out = run("node", [compile("webhooks", blocks[1]!)], project, 60_000);
  assert.match(out, /verified webhook\.test ev_\w+/);
});
