/**
 * The layout's rules, checked on the source: `lib/` is building blocks (it imports neither
 * `pipelines/` nor `trainer/`), the orchestrator side never imports TensorFlow.js, and no folder
 * imports another that imports it back (docs/architecture.md).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const REPO = join(import.meta.dirname, "..");
const ROOTS = ["lib", "pipelines", "trainer", "data"];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mjs)$/.test(entry.name) ? [path] : [];
  });
}

/** Every module specifier a file imports, statically or dynamically (type-only imports count too). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^"'`;]*?from\s*["']([^"']+)["']/g))
    found.push(match[1] as string);
  for (const match of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) found.push(match[1] as string);
  for (const match of text.matchAll(/new URL\(\s*["'](\.[^"']+)["']\s*,\s*import\.meta\.url/g))
    found.push(match[1] as string);
  return found;
}

const files = ROOTS.flatMap((root) => sources(join(REPO, root)));
const folderOf = (file: string) => relative(REPO, dirname(file));
const edges = new Map<string, Set<string>>();
const offenders: string[] = [];
for (const file of files) {
  const from = folderOf(file);
  for (const spec of specifiers(file)) {
    if (/^@tensorflow\//.test(spec) && /^(lib|pipelines)(\/|$)/.test(from))
      offenders.push(`${relative(REPO, file)} imports ${spec}`);
    if (!spec.startsWith(".")) continue;
    const to = folderOf(resolve(dirname(file), spec));
    if (/^lib(\/|$)/.test(from) && /^(pipelines|trainer)(\/|$)/.test(to))
      offenders.push(`${relative(REPO, file)} (lib) imports ${spec}`);
    if (/^trainer(\/|$)/.test(from) && /^pipelines(\/|$)/.test(to))
      offenders.push(`${relative(REPO, file)} (trainer) imports ${spec}`);
    if (to !== from) {
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)?.add(to);
    }
  }
}

test("lib/ imports neither pipelines/ nor trainer/; trainers never import pipelines/; no TensorFlow.js outside trainer/", () => {
  assert.deepEqual(offenders, []);
});

test("no import cycle between folders", () => {
  // Tarjan's strongly connected components over the folder graph: every component must be one folder.
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    order.set(node, index);
    low.set(node, index++);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!order.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number));
      } else if (onStack.has(next))
        low.set(node, Math.min(low.get(node) as number, order.get(next) as number));
    }
    if (low.get(node) !== order.get(node)) return;
    const component: string[] = [];
    for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
      onStack.delete(top);
      component.push(top);
      if (top === node) break;
    }
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const node of edges.keys()) if (!order.has(node)) visit(node);
  assert.deepEqual(
    cycles,
    [],
    `folders that import each other: ${cycles.map((c) => c.join(" ↔ ")).join("; ")}`,
  );
});
