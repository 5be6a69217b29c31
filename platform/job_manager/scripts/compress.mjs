// Writes .gz (gzip level 9) and .br (brotli, quality 11) copies of the text assets in dist/,
// for nginx's gzip_static / brotli_static. Run after `vite build`.
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = new URL("../dist/", import.meta.url).pathname;
const EXTENSIONS = /\.(js|mjs|css|html|svg|json|txt|map)$/;

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!entry.name.startsWith(".")) yield* walk(path); // not .vite/ (the build manifest)
    }
    else if (entry.isFile() && EXTENSIONS.test(entry.name)) yield path;
  }
}

let count = 0;
let raw = 0;
let gz = 0;
let br = 0;
try {
  await stat(root);
} catch {
  console.error(`compress: ${root} does not exist: run vite build first`);
  process.exit(1);
}
for await (const path of walk(root)) {
  const data = await readFile(path);
  const gzipped = gzipSync(data, { level: 9 });
  const brotli = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
    },
  });
  await writeFile(`${path}.gz`, gzipped);
  await writeFile(`${path}.br`, brotli);
  count += 1;
  raw += data.length;
  gz += gzipped.length;
  br += brotli.length;
}
const kB = (n) => `${(n / 1000).toFixed(1)} kB`;
console.log(
  `compress: ${count} files in ${relative(process.cwd(), root) || "dist"}: ${kB(raw)} → gzip ${kB(gz)}, brotli ${kB(br)}`,
);
