// Bundles src/ into ../services/annotation/static/ (served at /annotation/ui/). No dev server needed.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "services", "annotation", "static");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  minify: true,
  sourcemap: true,
  target: "es2022",
  format: "esm",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
cpSync(join(here, "src", "index.html"), join(out, "index.html"));
cpSync(join(here, "src", "styles.css"), join(out, "styles.css"));
console.log(`web UI built into ${out}`);
