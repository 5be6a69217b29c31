// The gzipped size of what index.html loads first: the entry chunk, the chunks it imports
// statically (transitively) and their CSS, read from Vite's dist/.vite/manifest.json.
// Exits non-zero when over the budget (500 kB).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const LIMIT_KB = Number(process.env.FIRST_PAGE_LIMIT_KB ?? 500);
const dist = new URL("../dist/", import.meta.url).pathname;

let manifest;
try {
  manifest = JSON.parse(await readFile(join(dist, ".vite", "manifest.json"), "utf8"));
} catch (error) {
  console.error(`size-report: cannot read dist/.vite/manifest.json (${error.message}); build first`);
  process.exit(2);
}

const entries = Object.entries(manifest).filter(([, chunk]) => chunk.isEntry);
if (entries.length === 0) {
  console.error("size-report: no entry chunk in the manifest");
  process.exit(2);
}

const files = new Set(["index.html"]);
const seen = new Set();
function visit(key) {
  if (seen.has(key)) return;
  seen.add(key);
  const chunk = manifest[key];
  if (!chunk) return;
  files.add(chunk.file);
  for (const css of chunk.css ?? []) files.add(css);
  for (const imported of chunk.imports ?? []) visit(imported); // static imports only
}
for (const [key] of entries) visit(key);

let total = 0;
const rows = [];
for (const file of files) {
  const size = gzipSync(await readFile(join(dist, file)), { level: 9 }).length;
  total += size;
  rows.push([file, size]);
}
rows.sort((a, b) => b[1] - a[1]);
for (const [file, size] of rows) console.log(`  ${(size / 1000).toFixed(1).padStart(7)} kB  ${file}`);
const kb = total / 1000;
console.log(`first page: ${kb.toFixed(1)} kB gzipped (limit ${LIMIT_KB} kB)`);
if (kb > LIMIT_KB) {
  console.error(`size-report: the first page is over budget by ${(kb - LIMIT_KB).toFixed(1)} kB`);
  process.exit(1);
}
