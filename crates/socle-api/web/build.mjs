// Bundles the hypervisor's scripts and styles into the folder given as
// argument (build.rs passes OUT_DIR/web). Everything comes from node_modules:
// nothing is fetched at run time, no CDN.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { socle: "src/main.js", "socle-app": "src/app.css" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  outdir: out,
  legalComments: "linked",
  logLevel: "warning",
});
// MapLibre's CSP build runs its worker from a same-origin file, so the
// Content-Security-Policy needs no `blob:`.
copyFileSync("node_modules/maplibre-gl/dist/maplibre-gl-csp-worker.js", join(out, "maplibre-worker.js"));
